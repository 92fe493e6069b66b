"""The vendor-agnostic run engine: HTTP, auth, retries, rate limits, run states, polling, storage.

Everything here is written once and used by every vendor module, so a vendor hook only has to say
where its endpoints are, how its statuses map, and how its errors look.
"""
