-- X.509 device authentication, as on Azure IoT Hub: a device authenticates
-- with SAS keys (sas), with a certificate of a registered thumbprint
-- (selfSigned) or with a certificate issued by a CA the hub trusts
-- (certificateAuthority). X.509 devices have no keys: their key columns are ''.
ALTER TABLE devices ADD COLUMN auth_type TEXT NOT NULL DEFAULT 'sas'
	CHECK (auth_type IN ('sas', 'selfSigned', 'certificateAuthority'));
-- Upper-case hex SHA-1 or SHA-256 thumbprints of a selfSigned device's certificates; '' for none.
ALTER TABLE devices ADD COLUMN primary_thumbprint TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN secondary_thumbprint TEXT NOT NULL DEFAULT '';

-- CA certificates that certificateAuthority devices' certificates chain to.
CREATE TABLE certificate_authorities (
	id          INTEGER PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE,
	certificate TEXT NOT NULL,                      -- PEM
	subject     TEXT NOT NULL,
	thumbprint  TEXT NOT NULL UNIQUE,               -- SHA-256 of the DER certificate, upper-case hex
	not_after   INTEGER NOT NULL,
	created_at  INTEGER NOT NULL
);
