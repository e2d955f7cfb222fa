// pulumi-resource-random: the Pulumi random provider (package "random"), bridged from the
// upstream Terraform random provider (plugin framework) with the resource tokens
// @pulumi/random uses (random:index/randomPassword:RandomPassword, ...). The pulumi-random
// provider module itself is refused by the module proxy (403).
package main

import (
	"context"

	pftfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	"github.com/terraform-providers/terraform-provider-random/shim"
)

// version is stamped at build time (-ldflags -X main.version=...).
var version = "0.0.0-dev"

func providerInfo() tfbridge.ProviderInfo {
	info := tfbridge.ProviderInfo{
		P:       pftfbridge.ShimProvider(shim.NewProvider()),
		Name:    "random",
		Version: version,
		// The plugin-framework bridge requires metadata; tfgen would write it (renames, auto
		// settings), but the runtime needs none of it: the tokens are computed below.
		MetadataInfo: tfbridge.NewProviderMetadata([]byte("{}")),
		// Each random_<thing> becomes random:index/random<Thing>:Random<Thing>, as in
		// @pulumi/random (which keeps the "random" of the Terraform name).
	}
	info.MustComputeTokens(tokens.SingleModule("", "index", tokens.MakeStandard("random")))
	return info
}

func main() {
	// The engine needs no schema to run programs that use @pulumi/random; GetSchema answers
	// with a minimal package description.
	pftfbridge.Main(context.Background(), "random", providerInfo(), pftfbridge.ProviderMetadata{PackageSchema: []byte(`{"name":"random"}`)})
}
