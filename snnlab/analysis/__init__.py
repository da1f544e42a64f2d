"""Measurements on networks: gradients through spikes, firing, memory, energy."""
