package controlplane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Token is a static bearer token the API server accepts (--token-auth-file).
// RBAC bindings to a ServiceAccount match a User named
// system:serviceaccount:NAMESPACE:NAME, so a static token can stand in for one.
type Token struct {
	Token  string
	User   string
	UID    string
	Groups []string
}

// pki holds the paths of everything writePKI made.
type pki struct {
	caCert, servingCert, servingKey, saPub, saKey, tokens string
}

// writePKI creates a CA, a serving certificate for the loopback addresses
// signed by it, a service-account key pair and the static token file.
func writePKI(dir string, tokens []Token) (pki, error) {
	p := pki{
		caCert:      filepath.Join(dir, "ca.crt"),
		servingCert: filepath.Join(dir, "apiserver.crt"),
		servingKey:  filepath.Join(dir, "apiserver.key"),
		saPub:       filepath.Join(dir, "sa.pub"),
		saKey:       filepath.Join(dir, "sa.key"),
		tokens:      filepath.Join(dir, "tokens.csv"),
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return p, fmt.Errorf("generate CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "flock-lab CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return p, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return p, fmt.Errorf("parse CA certificate: %w", err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return p, fmt.Errorf("generate serving key: %w", err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return p, fmt.Errorf("create serving certificate: %w", err)
	}
	// The service-account signer must be RSA or ECDSA; RSA is the common case.
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return p, fmt.Errorf("generate service-account key: %w", err)
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return p, fmt.Errorf("marshal service-account key: %w", err)
	}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return p, fmt.Errorf("marshal serving key: %w", err)
	}
	files := []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{p.caCert, "CERTIFICATE", caDER, 0o644},
		{p.servingCert, "CERTIFICATE", srvDER, 0o644},
		{p.servingKey, "EC PRIVATE KEY", srvKeyDER, 0o600},
		{p.saPub, "PUBLIC KEY", saPub, 0o644},
		{p.saKey, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey), 0o600},
	}
	for _, f := range files {
		data := pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})
		if err := os.WriteFile(f.path, data, f.mode); err != nil {
			return p, fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	if err := os.WriteFile(p.tokens, []byte(tokenFile(tokens)), 0o600); err != nil {
		return p, fmt.Errorf("write %s: %w", p.tokens, err)
	}
	return p, nil
}

// tokenFile renders the --token-auth-file CSV: token,user,uid,"group1,group2".
func tokenFile(tokens []Token) string {
	var b strings.Builder
	for _, t := range tokens {
		fmt.Fprintf(&b, "%s,%s,%s", t.Token, t.User, t.UID)
		if len(t.Groups) > 0 {
			fmt.Fprintf(&b, ",\"%s\"", strings.Join(t.Groups, ","))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// NewToken returns a random bearer token.
func NewToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}
