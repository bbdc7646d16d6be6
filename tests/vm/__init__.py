"""The kernel netem path tested for real in a VM (our kernels lack netem), and the user-space
shaper measured the same way on the host. See test_netem_vm.py."""
