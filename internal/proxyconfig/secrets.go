package proxyconfig

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sort"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"mesh.dev/mesh/internal/configdump"
)

// SecretRow is one certificate of one secret in the secrets table.
type SecretRow struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Status    string `json:"status"`
	Valid     string `json:"valid"`
	Serial    string `json:"serialNumber"`
	NotAfter  string `json:"notAfter"`
	NotBefore string `json:"notBefore"`
	resource  *configdump.Resource
}

// Source returns the resource the row was made from.
func (r SecretRow) Source() *configdump.Resource { return r.resource }

// Secrets summarises TLS secrets, decoding the leaf (or first CA)
// certificate of inline PEM; now decides VALID.
func Secrets(d *configdump.Dump, f Filter, now time.Time) []SecretRow {
	var rows []SecretRow
	for _, r := range d.Of(configdump.KindSecret) {
		if !contains(r.Name, f.Name) {
			continue
		}
		row := SecretRow{Name: r.Name, Type: "-", Status: secretStatus(r.State), Valid: "-", Serial: "-", NotAfter: "-", NotBefore: "-", resource: r}
		s, ok := r.Message.(*tlsv3.Secret)
		if !ok {
			rows = append(rows, row)
			continue
		}
		var src *corev3.DataSource
		switch {
		case s.GetTlsCertificate() != nil:
			row.Type, src = "Cert Chain", s.GetTlsCertificate().GetCertificateChain()
		case s.GetValidationContext() != nil:
			row.Type, src = "CA", s.GetValidationContext().GetTrustedCa()
		case s.GetSessionTicketKeys() != nil:
			row.Type = "Session Ticket Keys"
		case s.GetGenericSecret() != nil:
			row.Type = "Generic"
		}
		if cert, err := firstCert(src); err == nil && cert != nil {
			row.Valid = fmt.Sprint(!now.Before(cert.NotBefore) && !now.After(cert.NotAfter))
			row.Serial = cert.SerialNumber.Text(16)
			row.NotAfter = cert.NotAfter.UTC().Format(time.RFC3339)
			row.NotBefore = cert.NotBefore.UTC().Format(time.RFC3339)
		} else if err != nil {
			row.Valid = "false"
			row.Serial = "(bad certificate: " + err.Error() + ")"
		}
		rows = append(rows, row)
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	return rows
}

func secretStatus(s configdump.State) string {
	switch s {
	case configdump.StateWarming:
		return "WARMING"
	default:
		return "ACTIVE"
	}
}

// firstCert decodes the first certificate of inline PEM; files and
// environment variables live on the proxy's host, so they yield nil.
func firstCert(src *corev3.DataSource) (*x509.Certificate, error) {
	var data []byte
	switch {
	case src.GetInlineBytes() != nil:
		data = src.GetInlineBytes()
	case src.GetInlineString() != "":
		data = []byte(src.GetInlineString())
	default:
		return nil, nil
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}
