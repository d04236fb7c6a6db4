package auth

// How a device authenticates: the values of Azure IoT Hub's registry field
// authentication.type.
const (
	AuthSAS                  = "sas"                  // SAS tokens signed with the device's keys
	AuthSelfSigned           = "selfSigned"           // a certificate with a registered thumbprint
	AuthCertificateAuthority = "certificateAuthority" // a certificate issued by a CA the hub trusts
)

// Auth methods: how one connection or request proved who it is, recorded
// with every message the device sends and in its connection log.
const (
	AuthSASPrimary    = "sas-primary"    // a SAS token signed with the primary key
	AuthSASSecondary  = "sas-secondary"  // a SAS token signed with the secondary key
	AuthX509Primary   = "x509-primary"   // a certificate of the primary thumbprint
	AuthX509Secondary = "x509-secondary" // a certificate of the secondary thumbprint
	AuthX509CA        = "x509-ca"        // a certificate chained to a registered CA
	AuthSASPolicy     = "sas-policy"     // a SAS token signed with a shared access policy's key (deviceConnect)
)

// SASMethods are the auth methods of the primary and secondary key, by the
// key index SASToken.Verify returns.
var SASMethods = [2]string{AuthSASPrimary, AuthSASSecondary}
