//go:build tools

// Keeps the YAML host's main package in this module's build list.
package tools

import _ "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml"
