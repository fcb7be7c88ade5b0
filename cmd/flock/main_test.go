package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestParseConf(t *testing.T) {
	for _, tc := range []struct {
		in       string
		wantCode uint
		wantErr  string
	}{
		{in: `{"cniVersion":"1.1.0","name":"k8s","type":"flock"}`},
		{in: `{"cniVersion":"1.1.0","type":"flock","socket":"/run/x.sock","timeoutSeconds":5,"mtu":9000}`},
		{in: `{"type":"flock"`, wantCode: types.ErrDecodingFailure},
		{in: `{"type":"flock","socket":"x.sock"}`, wantCode: types.ErrInvalidNetworkConfig, wantErr: `socket "x.sock"`},
		{in: `{"type":"flock","timeoutSeconds":601}`, wantCode: types.ErrInvalidNetworkConfig, wantErr: "timeoutSeconds 601"},
		{in: `{"type":"flock","mtu":100}`, wantCode: types.ErrInvalidNetworkConfig, wantErr: "mtu 100"},
		{in: `{"type":"flock","mtu":"big"}`, wantCode: types.ErrDecodingFailure},
	} {
		conf, err := parseConf([]byte(tc.in))
		if tc.wantCode == 0 {
			if err != nil || conf.Socket == "" || conf.TimeoutSeconds == 0 {
				t.Errorf("%s: %+v %v", tc.in, conf, err)
			}
			continue
		}
		var e *types.Error
		if !errors.As(err, &e) || e.Code != tc.wantCode || !strings.Contains(e.Details, tc.wantErr) {
			t.Errorf("%s: error %v, want code %d with %q", tc.in, err, tc.wantCode, tc.wantErr)
		}
	}
}

// FuzzParseConf: any bytes as the network config give a config with sane
// values or a CNI error, never a panic.
func FuzzParseConf(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"k8s","type":"flock","socket":"/run/flock/agent.sock","mtu":1500}`))
	f.Add([]byte(`{"cniVersion":"0.3.1","prevResult":{"ips":[{"address":"10.0.0.2/32"}]},"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		conf, err := parseConf(b)
		if err != nil {
			var e *types.Error
			if !errors.As(err, &e) {
				t.Fatalf("error is not a CNI error: %v", err)
			}
			return
		}
		if !strings.HasPrefix(conf.Socket, "/") || conf.TimeoutSeconds < 1 || conf.TimeoutSeconds > 600 {
			t.Fatalf("bad config accepted: %+v", conf)
		}
	})
}
