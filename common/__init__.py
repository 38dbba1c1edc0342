"""Code shared by the Hub and the Worker: settings, auth, errors, the task store, reports."""
