"""The measuring core: one lane's job on one endpoint, the client, the prompts."""
