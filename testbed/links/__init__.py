"""Host side of ``testbed link`` and ``testbed capture``: link names, option parsing, and the
control actions on border routers that carry them out (see testbed.node.shaping for the node
side).

    options   LINK names (internet, backbone, pan-<name>) and option values -> parameters
    control   which router carries which link; show, set, reset, capture through the backend
"""
