"""The Hub: one address in front of many Worker nodes, forwarding submissions round-robin."""
