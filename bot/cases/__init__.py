"""Confidential contact requests: a person asks to talk to staff, a pseudonymous case reaches them.

The server keeps case content only sealed twice (the person's data key, then the staff
team's public key), so it cannot read stored cases back; staff read them in the end-to-end
encrypted staff room as they arrive, or later with the staff private key off the server.
"""
