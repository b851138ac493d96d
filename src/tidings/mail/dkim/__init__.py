"""DKIM: the signing keys of sender domains (made, sealed and kept in the database), the DNS
record each needs, and the signer every outgoing message passes through.

``keys`` validates names and makes key pairs, ``seal`` encrypts private keys at rest,
``store`` keeps them, ``published`` asks DNS whether a key is published, and ``signer``
signs messages: dkimpy parses and canonicalises, ``cryptography`` (OpenSSL) does the
private-key step, which is ten times faster than dkimpy's pure-Python RSA.
"""
