package zkclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// TLSOptions configure TLS to the ensemble's secureClientPort.
type TLSOptions struct {
	CAFile     string // PEM bundle to verify the servers with; empty means the system roots
	CertFile   string // client certificate (PEM), for x509 authentication
	KeyFile    string // its private key (PEM)
	ServerName string // name to verify; empty means the host of each server address
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool
}

// Config builds the tls.Config.
func (o TLSOptions) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("zkclient: tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("zkclient: tls ca %s: no PEM certificate in it", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("zkclient: tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case o.CertFile != "" || o.KeyFile != "":
		return nil, errors.New("zkclient: tls: a client certificate needs both the certificate and the key file")
	}
	return cfg, nil
}

// Dialer returns a dialer that opens TLS connections, verifying each server
// against the host part of its address unless ServerName is set. The
// timeout covers the TLS handshake too.
func (o TLSOptions) Dialer() (Dialer, error) {
	base, err := o.Config()
	if err != nil {
		return nil, err
	}
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		cfg := base.Clone()
		if cfg.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			cfg.ServerName = host
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		d := &tls.Dialer{Config: cfg}
		return d.DialContext(ctx, network, addr)
	}, nil
}
