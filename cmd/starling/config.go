package main

import (
	"flag"
	"os"
	"strings"

	"github.com/starling-sfu/starling/config"
)

// loadConfig builds the configuration from defaults, the -config YAML file,
// STARLING_* variables and flags, each overriding the one before.
func loadConfig(fs *flag.FlagSet, args []string) (config.Config, error) {
	cfg := config.Default()
	path := configPath(args)
	fs.String("config", path, "YAML config file (env STARLING_CONFIG)")
	if path != "" {
		if err := cfg.LoadFile(path); err != nil {
			return cfg, err
		}
	}
	if err := cfg.ApplyEnv(os.LookupEnv); err != nil {
		return cfg, err
	}
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// configPath finds -config before the other flags are parsed, since the file
// sits under them in precedence.
func configPath(args []string) string {
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return os.Getenv("STARLING_CONFIG")
}
