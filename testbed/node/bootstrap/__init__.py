"""Bootstrap profiles: one module per profile behind ``profile.BootstrapProfile``.

``accounting`` measures what a profile costs on the wire; ``profile`` holds the interface and
result types. Kept free of imports so that ``accounting`` can be used by transport code
without pulling in every profile.
"""
