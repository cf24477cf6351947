package confjson

import (
	"crypto/tls"
)

// TLSFiles is a tls block: a certificate and its key in PEM files, and for
// the side that checks a peer, the CA certificates it trusts.
type TLSFiles struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	CAFile   string `json:"ca_file"`
}

// LoadKeyPair reads the certificate and key; path names the block.
func (tf TLSFiles) LoadKeyPair(path string) (tls.Certificate, error) {
	switch {
	case tf.CertFile == "":
		return tls.Certificate{}, Errorf(path+".cert_file", "is required with key_file")
	case tf.KeyFile == "":
		return tls.Certificate{}, Errorf(path+".key_file", "is required with cert_file")
	}
	cert, err := tls.LoadX509KeyPair(tf.CertFile, tf.KeyFile)
	if err != nil {
		return tls.Certificate{}, Errorf(path, "load certificate: %v", err)
	}
	return cert, nil
}
