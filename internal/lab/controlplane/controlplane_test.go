package controlplane

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
)

func TestStartCreateNamespaceStop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (as CI runs it): starts etcd and kube-apiserver")
	}
	// A cold build of kube-apiserver takes minutes: allow all the test has.
	ctx, cancel := context.WithCancel(context.Background())
	if d, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.Background(), d.Add(-10*time.Second))
	}
	defer cancel()
	cp, err := Start(ctx, Options{Dir: t.TempDir(), Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Stop() })
	if !strings.HasPrefix(cp.Server, "https://127.0.0.1:") {
		t.Errorf("Server = %q, want https://127.0.0.1:PORT", cp.Server)
	}

	client, err := kubernetes.NewForConfig(cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "flock-test"}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	got, err := client.CoreV1().Namespaces().Get(ctx, "flock-test", metav1.GetOptions{})
	if err != nil || got.Name != "flock-test" {
		t.Fatalf("get namespace: %v %v", got, err)
	}
	info, err := client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if info.GitVersion != KubeVersion || info.Major != "1" || info.Minor != "37" {
		t.Errorf("server version = %s (%s.%s), want %s", info.GitVersion, info.Major, info.Minor, KubeVersion)
	}

	// Every CRD of deploy/crd/ is served.
	root, err := SourceRoot()
	if err != nil {
		t.Fatal(err)
	}
	crdFiles, _ := filepath.Glob(filepath.Join(root, "deploy", "crd", "*.yaml"))
	for _, file := range crdFiles {
		objs, err := ReadObjects(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			plural, _, _ := unstructured.NestedString(o.Object, "spec", "names", "plural")
			versions, _, _ := unstructured.NestedSlice(o.Object, "spec", "versions")
			for _, v := range versions {
				name, _ := v.(map[string]any)["name"].(string)
				list, err := client.Discovery().ServerResourcesForGroupVersion(group + "/" + name)
				if err != nil || !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == plural }) {
					t.Errorf("CRD %s from %s: %s/%s not served: %v", o.GetName(), file, group, name, err)
				}
			}
		}
	}

	// The admin kubeconfig works for kubectl, which also parses the version.
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", cp.Kubeconfig, "version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Server Version: "+KubeVersion) {
			t.Errorf("kubectl version: %v\n%s", err, out)
		}
		out, err = exec.CommandContext(ctx, kubectl, "--kubeconfig", cp.Kubeconfig, "get", "namespace", "flock-test", "-o", "name").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "namespace/flock-test" {
			t.Errorf("kubectl get namespace: %v\n%s", err, out)
		}
	}

	// A later process finds it again through Load.
	loaded, err := Load(cp.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Server != cp.Server || loaded.Token != cp.Token || !loaded.Running() {
		t.Errorf("Load = %+v, want the running %+v", loaded, cp)
	}

	pids := map[string]int{}
	for _, p := range cp.procs {
		pids[p.Name] = p.Pid
	}
	if len(pids) != 2 {
		t.Fatalf("processes = %v, want etcd and kube-apiserver", pids)
	}
	if err := cp.Stop(); err != nil {
		t.Fatal(err)
	}
	for name, pid := range pids {
		if PidAlive(pid, "") {
			t.Errorf("%s (pid %d) still running after Stop", name, pid)
		}
	}
	if cp.Running() || loaded.Running() {
		t.Error("Running() = true after Stop")
	}
}

func TestTokenFile(t *testing.T) {
	got := tokenFile([]Token{
		{Token: "t1", User: "admin", UID: "admin", Groups: []string{"system:masters"}},
		{Token: "t2", User: "system:serviceaccount:kube-system:flock", UID: "u2", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system"}},
		{Token: "t3", User: "plain", UID: "u3"},
	})
	want := "t1,admin,admin,\"system:masters\"\n" +
		"t2,system:serviceaccount:kube-system:flock,u2,\"system:serviceaccounts,system:serviceaccounts:kube-system\"\n" +
		"t3,plain,u3\n"
	if got != want {
		t.Errorf("tokenFile =\n%s\nwant\n%s", got, want)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
