"""The service sandbox: a local stand-in for the streaming services' public APIs.

An aiohttp server that speaks Spotify's documented Accounts service and Web API under `/spotify/accounts`
and `/spotify/api` (point SPOTIFY_ACCOUNTS_URL and SPOTIFY_API_URL at them), with a login page for fans,
an in-memory world of users, tokens, releases and libraries, and fault injection (latency, server errors,
hangs, rate limits). A JSON control API under `/_sandbox/` lets tests and benchmarks reset it, seed it, flip
faults and read back every library write.

It is a standalone program: it imports nothing from Django or the project's apps.
Start it with `python manage.py run_sandbox`, `python -m delivery.sandbox`, or in tests with
`delivery.sandbox.server.start_in_thread()`.
"""
