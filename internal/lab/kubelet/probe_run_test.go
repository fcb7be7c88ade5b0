package kubelet

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeWorker is a worker whose pod has IP podIP and runs in the calling
// namespace (host network), enough for probeFor.
func probeWorker(podIP string) *worker {
	w := &worker{k: &kubelet{host: &host{}}, rec: &podRecord{}}
	w.snap.PodIPs = []string{podIP}
	return w
}

func attempt(t *testing.T, w *worker, c *v1.Container, p *v1.Probe) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), paramsOf(p).Timeout)
	defer cancel()
	return w.probeFor(c, p, []string{"PATH=" + defaultPath, "WANT=yes"})(ctx)
}

func TestProbes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/redirect":
			http.Redirect(rw, r, "/healthz", http.StatusFound)
		case r.URL.Path == "/healthz" && r.URL.Query().Get("x") == "1" && r.Header.Get("X-Check") == "on" &&
			strings.HasPrefix(r.UserAgent(), "kube-probe/") && r.Host == "example.test":
			rw.WriteHeader(http.StatusOK)
		case r.URL.Path == "/healthz" && r.Header.Get("X-Check") == "":
			rw.WriteHeader(http.StatusNoContent)
		case r.URL.Path == "/slow":
			time.Sleep(3 * time.Second)
		default:
			http.Error(rw, "nope", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	_, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	c := &v1.Container{Name: "c", Ports: []v1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	w := probeWorker("127.0.0.1")
	httpGet := func(path string, headers ...v1.HTTPHeader) *v1.Probe {
		return &v1.Probe{TimeoutSeconds: 1, ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{
			Path: path, Port: intstr.FromString("http"), HTTPHeaders: headers}}}
	}
	tcp := func(port intstr.IntOrString) *v1.Probe {
		return &v1.Probe{ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: port}}}
	}
	exec := func(cmd ...string) *v1.Probe {
		return &v1.Probe{TimeoutSeconds: 1, ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: cmd}}}
	}
	for _, tc := range []struct {
		name  string
		probe *v1.Probe
		ok    bool
	}{
		{"http 204", httpGet("/healthz"), true},
		{"http with query, headers and Host", httpGet("/healthz?x=1", v1.HTTPHeader{Name: "X-Check", Value: "on"}, v1.HTTPHeader{Name: "Host", Value: "example.test"}), true},
		{"http redirect followed", httpGet("/redirect"), true},
		{"http 503", httpGet("/down"), false},
		{"http timeout", httpGet("/slow"), false},
		{"tcp open", tcp(intstr.FromInt32(int32(port))), true},
		{"tcp named port", tcp(intstr.FromString("http")), true},
		{"tcp closed", tcp(intstr.FromInt32(int32(closedPort))), false},
		{"tcp unknown port name", tcp(intstr.FromString("grpc")), false},
		{"exec ok with the container's env", exec("sh", "-c", `test "$WANT" = yes`), true},
		{"exec exit 1", exec("sh", "-c", "exit 1"), false},
		{"exec timeout", exec("sleep", "10"), false},
		{"grpc unsupported", &v1.Probe{ProbeHandler: v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: 1}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := attempt(t, w, c, tc.probe)
			if (err == nil) != tc.ok {
				t.Errorf("probe error %v, want success %v", err, tc.ok)
			}
			if d := time.Since(start); d > 2500*time.Millisecond {
				t.Errorf("probe took %v, beyond its timeout", d)
			}
		})
	}
}
