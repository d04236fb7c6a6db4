-- X.509 device authentication, as in sqlite/0006_x509.sql.
ALTER TABLE devices ADD COLUMN auth_type TEXT NOT NULL DEFAULT 'sas'
	CHECK (auth_type IN ('sas', 'selfSigned', 'certificateAuthority'));
ALTER TABLE devices ADD COLUMN primary_thumbprint TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN secondary_thumbprint TEXT NOT NULL DEFAULT '';

CREATE TABLE certificate_authorities (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE,
	certificate TEXT NOT NULL,                      -- PEM
	subject     TEXT NOT NULL,
	thumbprint  TEXT NOT NULL UNIQUE,               -- SHA-256 of the DER certificate, upper-case hex
	not_after   BIGINT NOT NULL,
	created_at  BIGINT NOT NULL
);
