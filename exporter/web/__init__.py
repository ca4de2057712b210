"""The web side: the exporter-toolkit web config (config, tls, auth, middleware), the routes (server),
the connection limits (connections) and the uvicorn pieces (serving)."""
