"""The depicted person's portal: every use of their likeness, a flag, withdrawal (R21).

Depends on webapp.consent (the link, withdrawal), webapp.studio.delivery (the file
stream) and webapp.mail; nothing in webapp depends on it but the studio pages and the
subjects API, which show the account holder the same list.
"""
