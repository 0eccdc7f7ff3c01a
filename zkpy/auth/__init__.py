"""Authentication pieces with no I/O: SASL DIGEST-MD5 (digest_md5), JAAS files (jaas) and X.500
names as Java writes and parses them (x500). The runtime wires them in: zkpy.runtime.sasl reads
the JAAS Server section, zkpy.runtime.tls makes the TLS context and the x509 ids."""
