"""The staff console: server-rendered pages for reviewers, warehouse, finance, auditors and
admins, signed in through the company's OpenID Provider. It holds no refund data: every page
asks the four services' staff APIs with the signed-in person's own access token."""
