"""`scanhub`, the command-line client: scan files and folders, read the cluster's state and reports."""
