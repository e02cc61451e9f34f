"""The local runtime: the same handlers against moto on 127.0.0.1, plus the ``mlops`` CLI. Not deployed."""
