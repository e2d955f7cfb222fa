// pulumi-language-python: a small Python language host for the Pulumi engine.
//
// The published host (module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3)
// is not served by the Go module proxy this project can reach (403 at every version tried), so
// this is our own minimal one, on the published sdk/v3 gRPC definitions and pkg/v3's Python
// code generator. It does what the engine and `pulumi package add` need for a Python program:
//   - InstallDependencies: a virtualenv (the `virtualenv` runtime option of Pulumi.yaml,
//     relative to the project) and `pip install -r requirements.txt` from PyPI into it;
//   - Run: starts the virtualenv's python on exec.py (embedded; it configures pulumi.runtime
//     from the engine's flags and runs the program as __main__ inside the stack resource),
//     with the stack config in PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS;
//   - GeneratePackage: a Python SDK for a schema (pkg/v3/codegen/python), for `package add`;
//   - Link: the generated SDK's folder added to requirements.txt, so InstallDependencies
//     installs it into the virtualenv;
//   - GetRequiredPackages/Plugins: none (plugins are found on PATH, never downloaded).
// Python plugins (RunPlugin), program generation and templates are not implemented.
package main

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"devmachines.local/tools/pulumi/langhost"
	"github.com/pulumi/pulumi/pkg/v3/codegen/python"
	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// version is stamped at build time (-ldflags -X main.version=...).
var version = "0.0.0-dev"

// execScript runs the program inside the Python SDK (see exec.py).
//
//go:embed exec.py
var execScript string

type host struct {
	langhost.Base // the engine's address, and the answers every language gives alike
}


// programDir is where the program (and its requirements.txt) lives.
func programDir(info *pulumirpc.ProgramInfo, fallback string) string {
	if info != nil && info.ProgramDirectory != "" {
		return info.ProgramDirectory
	}
	return fallback
}

// rootDir is where Pulumi.yaml lives: relative runtime options are relative to it.
func rootDir(info *pulumirpc.ProgramInfo, fallback string) string {
	if info != nil && info.RootDirectory != "" {
		return info.RootDirectory
	}
	return programDir(info, fallback)
}

// systemPython is the interpreter that creates virtualenvs (PULUMI_PYTHON_CMD, as the
// published host reads it, else python3).
func systemPython() string {
	if cmd := os.Getenv("PULUMI_PYTHON_CMD"); cmd != "" {
		return cmd
	}
	return "python3"
}

// virtualenv is the absolute path of the `virtualenv` runtime option, or "" without one.
func virtualenv(info *pulumirpc.ProgramInfo, fallback string) string {
	venv := langhost.Option(info, "virtualenv")
	if venv == "" {
		return ""
	}
	if !filepath.IsAbs(venv) {
		venv = filepath.Join(rootDir(info, fallback), venv)
	}
	return venv
}

// interpreter is the python that runs the program: the virtualenv's when one is configured.
func interpreter(info *pulumirpc.ProgramInfo, fallback string) (string, error) {
	venv := virtualenv(info, fallback)
	if venv == "" {
		return systemPython(), nil
	}
	bin := filepath.Join(venv, "bin", "python")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("the virtualenv %s (runtime option `virtualenv` in Pulumi.yaml) does not exist: run `pulumi install`", venv)
	}
	return bin, nil
}

func (h *host) About(_ context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	bin, err := interpreter(req.Info, "")
	if err != nil {
		bin = systemPython()
	}
	out, _ := exec.Command(bin, "--version").Output()
	return &pulumirpc.AboutResponse{Executable: bin, Version: strings.TrimPrefix(strings.TrimSpace(string(out)), "Python ")}, nil
}

func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest, server grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse]) error {
	dir := programDir(req.Info, req.Directory)
	stdout, stderr := langhost.Streams(func(stdout, stderr []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stdout: stdout, Stderr: stderr})
	})
	run := func(name string, args ...string) error {
		fmt.Fprintf(stdout, "$ %s %s\n", name, strings.Join(args, " "))
		cmd := exec.CommandContext(server.Context(), name, args...)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		return nil
	}

	bin := systemPython()
	if venv := virtualenv(req.Info, req.Directory); venv != "" {
		bin = filepath.Join(venv, "bin", "python")
		if _, err := os.Stat(bin); err != nil {
			if err := run(systemPython(), "-m", "venv", venv); err != nil {
				return fmt.Errorf("creating the virtualenv (runtime option `virtualenv` in Pulumi.yaml): %w", err)
			}
		}
	}
	requirements := filepath.Join(dir, "requirements.txt")
	if _, err := os.Stat(requirements); err != nil {
		fmt.Fprintf(stdout, "no requirements.txt in %s: nothing to install\n", dir)
		return nil
	}
	return run(bin, "-m", "pip", "install", "--disable-pip-version-check", "-r", "requirements.txt")
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.Info
	dir := programDir(info, req.Pwd)
	program := req.Program
	if info != nil && info.ProgramDirectory != "" {
		program = filepath.Join(info.ProgramDirectory, info.EntryPoint)
	}
	bin, err := interpreter(info, req.Pwd)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	args := []string{"-u", "-c", execScript,
		"--monitor=" + req.MonitorAddress, "--engine=" + h.Engine,
		"--project=" + req.Project, "--stack=" + req.Stack, "--pwd=" + req.Pwd,
		"--parallel=" + strconv.Itoa(int(req.Parallel))}
	if req.Organization != "" {
		args = append(args, "--organization="+req.Organization)
	}
	args = append(args, "--root-directory="+rootDir(info, dir))
	if req.DryRun {
		args = append(args, "--dry-run")
	}
	args = append(append(args, program), req.Args...)

	configEnv, err := langhost.ConfigEnv(req)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = req.Pwd
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr // the engine shows a host's output
	cmd.Env = append(os.Environ(), configEnv...)
	return langhost.RunResult(cmd.Run()), nil
}

// GeneratePackage writes a Python SDK for the schema into req.Directory (pkg/v3's generator;
// packages the schema depends on are loaded through the engine's loader).
func (h *host) GeneratePackage(ctx context.Context, req *pulumirpc.GeneratePackageRequest) (*pulumirpc.GeneratePackageResponse, error) {
	loader, err := schema.NewLoaderClient(req.LoaderTarget)
	if err != nil {
		return nil, err
	}
	defer loader.Close()
	var spec schema.PackageSpec
	if err := json.Unmarshal([]byte(req.Schema), &spec); err != nil {
		return nil, fmt.Errorf("reading the schema: %w", err)
	}
	pkg, diags, err := schema.BindSpec(spec, loader, schema.ValidationOptions{})
	if err != nil {
		return nil, fmt.Errorf("binding the schema: %w", err)
	}
	if diags.HasErrors() {
		return nil, fmt.Errorf("binding the schema: %w", diags)
	}
	files, err := python.GeneratePackage("pulumi-language-python", pkg, req.ExtraFiles, loader)
	if err != nil {
		return nil, fmt.Errorf("generating the Python SDK: %w", err)
	}
	for name, content := range files {
		path := filepath.Join(req.Directory, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return nil, err
		}
	}
	return &pulumirpc.GeneratePackageResponse{}, nil
}

// Link adds each generated SDK's folder to the program's requirements.txt (once), so that
// InstallDependencies, which `pulumi package add` runs next, installs it into the virtualenv.
func (h *host) Link(_ context.Context, req *pulumirpc.LinkRequest) (*pulumirpc.LinkResponse, error) {
	root := rootDir(req.Info, "")
	dir := programDir(req.Info, root)
	requirements := filepath.Join(dir, "requirements.txt")
	var lines []string
	if f, err := os.Open(requirements); err == nil {
		scanner := bufio.NewScanner(f)
		for scanner.Scan() {
			lines = append(lines, scanner.Text())
		}
		f.Close()
		if err := scanner.Err(); err != nil {
			return nil, err
		}
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	var instructions []string
	for _, dep := range req.Packages {
		path := dep.Path
		if !filepath.IsAbs(path) {
			path = filepath.Join(root, path)
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return nil, err
		}
		// pip reads a line starting with ./ as a local folder to install.
		entry := "./" + filepath.ToSlash(rel)
		present := false
		for _, line := range lines {
			if strings.TrimSpace(line) == entry {
				present = true
			}
		}
		if !present {
			lines = append(lines, entry)
		}
		name := ""
		if dep.Package != nil {
			name = dep.Package.Name
			if dep.Package.Parameterization != nil {
				name = dep.Package.Parameterization.Name
			}
		}
		module := python.PyPack("", name)
		instructions = append(instructions, fmt.Sprintf("import %s as %s", module, python.PyName(name)))
	}
	if err := os.WriteFile(requirements, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	return &pulumirpc.LinkResponse{
		ImportInstructions: "You can then import the SDK in your Python code with:\n\n  " + strings.Join(instructions, "\n  "),
	}, nil
}

func main() {
	h := &host{Base: langhost.Base{Version: version}}
	langhost.Serve(&h.Base, h)
}
