// Package controlplane runs a real Kubernetes control plane for the lab and
// its tests: Debian's etcd and an upstream kube-apiserver (built once from
// hack/kube-apiserver and cached), both on 127.0.0.1 in the caller's network
// namespace.
package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Service ranges handed to the API server. Nothing routes them yet; they are
// taken from the benchmarking and documentation ranges, apart from the lab's
// node pools (198.18.<i>.0/24) and links (198.19.<i>.0/24, i ≤ 254).
const (
	ServiceCIDR4 = "198.19.255.0/24"
	ServiceCIDR6 = "2001:db8:5e5::/112"
)

// AdminUser is the user of the admin token; it is in group system:masters.
const AdminUser = "flock-lab-admin"

// Options configures Start.
type Options struct {
	Dir      string    // state: etcd data, certificates, kubeconfig, logs
	CacheDir string    // where the built kube-apiserver is kept; "" = $HOME/.cache/flock-lab
	Log      io.Writer // build progress; nil = os.Stderr (a cold build takes minutes: say why)

	// Tokens are further static bearer tokens the API server accepts, e.g.
	// one per ServiceAccount identity the lab's agents use.
	Tokens []Token
	// EgressConfig, when set, is the API server's egress selector
	// configuration (the real-runtime lab reaches kubelets through it).
	EgressConfig string
	// Detach starts the daemons in their own sessions so they outlive the
	// caller; Stop (or Load(dir).Stop()) ends them. Otherwise they are killed
	// when the caller exits.
	Detach bool
}

// ControlPlane is a running etcd and kube-apiserver.
type ControlPlane struct {
	Dir        string `json:"dir"`
	Kubeconfig string `json:"kubeconfig"` // admin kubeconfig
	Server     string `json:"server"`     // https://127.0.0.1:PORT
	CAFile     string `json:"caFile"`
	Token      string `json:"token"` // admin bearer token (system:masters)

	procs []*process // kube-apiserver, etcd: the order Stop ends them
}

// saved is what Start records in Dir for Load.
type saved struct {
	ControlPlane
	Processes []*process `json:"processes"`
}

// stateFile records a started control plane in its Dir for Load.
const stateFile = "controlplane.json"

// Start builds kube-apiserver if needed and starts etcd and kube-apiserver on
// free loopback ports, writes an admin kubeconfig to Dir/admin.kubeconfig,
// waits for /readyz and installs every CRD in deploy/crd/. ctx bounds only
// the start; the daemons run until Stop.
func Start(ctx context.Context, opts Options) (_ *ControlPlane, err error) {
	if opts.Dir == "" {
		return nil, errors.New("start control plane: no state directory")
	}
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultCacheDir()
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	apiserver, err := buildAPIServer(ctx, opts.CacheDir, opts.Log)
	if err != nil {
		return nil, err
	}
	etcd, err := etcdBinary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	cp := &ControlPlane{
		Dir:        dir,
		Kubeconfig: filepath.Join(dir, "admin.kubeconfig"),
		Token:      NewToken(),
	}
	defer func() {
		if err != nil {
			cp.Stop()
		}
	}()
	tokens := append([]Token{{Token: cp.Token, User: AdminUser, UID: AdminUser, Groups: []string{"system:masters"}}}, opts.Tokens...)
	pki, err := writePKI(dir, tokens)
	if err != nil {
		return nil, err
	}
	cp.CAFile = pki.caCert

	etcdURL, err := cp.startEtcd(ctx, etcd, opts.Detach)
	if err != nil {
		return nil, err
	}
	var extra []string
	if opts.EgressConfig != "" {
		file := filepath.Join(dir, "egress-selector.yaml")
		if err := os.WriteFile(file, []byte(opts.EgressConfig), 0o644); err != nil {
			return nil, fmt.Errorf("start control plane: %w", err)
		}
		extra = append(extra, "--egress-selector-config-file="+file)
	}
	if err := cp.startAPIServer(ctx, apiserver, etcdURL, pki, opts.Detach, extra...); err != nil {
		return nil, err
	}
	if err := WriteKubeconfig(cp.Kubeconfig, cp.Server, cp.CAFile, cp.Token); err != nil {
		return nil, err
	}
	if err := cp.save(); err != nil {
		return nil, err
	}
	if err := cp.installCRDs(ctx); err != nil {
		return nil, err
	}
	return cp, nil
}

func (c *ControlPlane) startEtcd(ctx context.Context, bin string, detach bool) (string, error) {
	client, err := freePort()
	if err != nil {
		return "", err
	}
	peer, err := freePort()
	if err != nil {
		return "", err
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(client)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peer)
	p, err := startProcess("etcd", bin, []string{
		"--name=flock-lab",
		"--data-dir=" + filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=flock-lab=" + peerURL,
		"--log-level=warn",
	}, filepath.Join(c.Dir, "etcd.log"), detach)
	if err != nil {
		return "", err
	}
	c.procs = append(c.procs, p)
	if err := waitHealthy(ctx, p, 30*time.Second, func(ctx context.Context) error {
		return probe(ctx, nil, clientURL+"/health", "")
	}); err != nil {
		return "", err
	}
	return clientURL, nil
}

func (c *ControlPlane) startAPIServer(ctx context.Context, bin, etcdURL string, pki pki, detach bool, extra ...string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	c.Server = "https://127.0.0.1:" + strconv.Itoa(port)
	p, err := startProcess("kube-apiserver", bin, append([]string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// The endpoint reconcilers refuse a loopback address for the
		// "kubernetes" Service's endpoints; nothing in the lab uses that
		// Service (processes get kubeconfigs), so keep no endpoints for it.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + pki.servingCert,
		"--tls-private-key-file=" + pki.servingKey,
		"--client-ca-file=" + pki.caCert,
		"--token-auth-file=" + pki.tokens,
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + pki.saPub,
		"--service-account-signing-key-file=" + pki.saKey,
		"--service-cluster-ip-range=" + ServiceCIDR4 + "," + ServiceCIDR6,
		// No controller-manager creates the "default" ServiceAccount of a
		// namespace, and the ServiceAccount admission plugin would reject
		// every pod without it.
		"--disable-admission-plugins=ServiceAccount",
		// The agent DaemonSet is privileged; `apply --dry-run=server` of
		// deploy/ needs this.
		"--allow-privileged=true",
		"--cert-dir=" + filepath.Join(c.Dir, "certs"),
		"--profiling=false",
		"--v=1",
	}, extra...), filepath.Join(c.Dir, "kube-apiserver.log"), detach)
	if err != nil {
		return err
	}
	c.procs = append([]*process{p}, c.procs...) // stopped before etcd
	cfg := c.RESTConfig()
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return fmt.Errorf("kube-apiserver TLS config: %w", err)
	}
	return waitHealthy(ctx, p, 60*time.Second, func(ctx context.Context) error {
		return probe(ctx, tlsCfg, c.Server+"/readyz", c.Token)
	})
}

// RESTConfig returns an admin client configuration.
func (c *ControlPlane) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            c.Server,
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile},
		QPS:             100,
		Burst:           200,
	}
}

// Stop ends kube-apiserver, then etcd, and waits until both are gone. The
// state in Dir stays.
func (c *ControlPlane) Stop() error {
	var errs []error
	for _, p := range c.procs {
		if err := p.stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Running reports whether both daemons are alive.
func (c *ControlPlane) Running() bool {
	for _, p := range c.procs {
		if !p.running() {
			return false
		}
	}
	return len(c.procs) > 0
}

// Load finds the control plane that Start recorded in dir, for a later
// process (flock-lab down, status) to use or stop it.
func Load(dir string) (*ControlPlane, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("load control plane: %w", err)
	}
	var s saved
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("load control plane from %s: %w", dir, err)
	}
	c := s.ControlPlane
	c.procs = s.Processes
	return &c, nil
}

func (c *ControlPlane) save() error {
	data, err := json.MarshalIndent(saved{ControlPlane: *c, Processes: c.procs}, "", "  ")
	if err != nil {
		return fmt.Errorf("save control plane: %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, stateFile), data, 0o600); err != nil {
		return fmt.Errorf("save control plane: %w", err)
	}
	return nil
}

// WriteKubeconfig writes a kubeconfig that reaches server with a bearer
// token, trusting caFile.
func WriteKubeconfig(path, server, caFile, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["flock-lab"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: caFile}
	cfg.AuthInfos["flock-lab"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["flock-lab"] = &clientcmdapi.Context{Cluster: "flock-lab", AuthInfo: "flock-lab"}
	cfg.CurrentContext = "flock-lab"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// DefaultCacheDir is $HOME/.cache/flock-lab.
func DefaultCacheDir() string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "/root"
	}
	return filepath.Join(home, ".cache", "flock-lab")
}
