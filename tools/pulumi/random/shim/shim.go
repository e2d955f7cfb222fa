// Package shim exports the upstream Terraform random provider (plugin framework), which
// upstream keeps in an internal package, so the Pulumi bridge in ../main.go can wrap it.
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"
	upstream "github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// NewProvider returns the upstream provider (random_password, random_string, ...).
func NewProvider() provider.Provider { return upstream.New() }
