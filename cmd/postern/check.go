package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/postern-auth/postern/gateway"
)

// runCheck validates configuration files without starting anything, so a
// pipeline can refuse a bad change before it is deployed (configuration as
// code). Environment references are expanded from this process's
// environment, as the server would.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var servers, gateways multiFlag
	fs.Var(&servers, "config", "server configuration `file` to check (repeatable)")
	fs.Var(&gateways, "gateway-config", "gateway configuration `file` to check (repeatable)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 || len(servers)+len(gateways) == 0 {
		fmt.Fprintln(stderr, "usage: postern check [--config FILE]... [--gateway-config FILE]...")
		return exitUsage
	}
	code := exitOK
	for _, path := range servers {
		cfg, err := loadConfig(path, os.Getenv)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
			code = exitUsage
			continue
		}
		fmt.Fprintf(stdout, "%s: ok (%d clients, %d users, %d SAML providers, %d APIs)\n", path, len(cfg.Clients), len(cfg.Users), len(cfg.SAMLProviders), len(cfg.Catalog.APIs()))
		for _, w := range cfg.Warnings {
			fmt.Fprintf(stdout, "%s: warning: %s\n", path, w)
		}
	}
	for _, path := range gateways {
		cfg, err := gateway.LoadConfig(path, os.Getenv)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
			code = exitUsage
			continue
		}
		fmt.Fprintf(stdout, "%s: ok (%d routes)\n", path, len(cfg.Gateway.Routes))
	}
	return code
}

// multiFlag collects a repeated string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint(*m) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
