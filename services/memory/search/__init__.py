"""Search backends for recall and archival memory, behind one interface (`SearchBackend`)."""
