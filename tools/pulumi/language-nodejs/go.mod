// Our own small Node.js language host, on the published Pulumi sdk/v3 gRPC definitions
// (see main.go for why it is not the published host).
module devmachines.local/tools/pulumi/language-nodejs

go 1.26.6

require (
	github.com/pulumi/pulumi/sdk/v3 v3.276.0
	google.golang.org/grpc v1.83.2
)

require (
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260803160001-6ac0973c030d // indirect
	google.golang.org/protobuf v1.36.11 // indirect
)

// What our language hosts share (tools/pulumi/langhost); pulumi-install.sh stamps it too.
require devmachines.local/tools/pulumi/langhost v0.0.0

replace devmachines.local/tools/pulumi/langhost => ../langhost
