"""The Northflank API edge: HTTP client, typed models and the errors they raise."""
