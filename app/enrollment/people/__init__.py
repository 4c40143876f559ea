"""People: the users the enrollment service knows (the directory), who may read whose records,
and the identity rule (a signed-in user exists here from their first request)."""
