package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestChooseMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   modeFlags
		want mode
		err  string
	}{
		{name: "file", in: modeFlags{NodeConfig: "nc.yaml", PodsDir: "pods", NodeNameEnv: "n1", InCluster: true},
			want: mode{NodeConfig: "nc.yaml", PodsDir: "pods"}},
		{name: "kubeconfig", in: modeFlags{Kubeconfig: "kc", NodeName: "node-1", NodeNameEnv: "other"},
			want: mode{Kube: true, Kubeconfig: "kc", NodeName: "node-1"}},
		{name: "in-cluster with env", in: modeFlags{InCluster: true, NodeNameEnv: "node-2"},
			want: mode{Kube: true, NodeName: "node-2"}},
		{name: "both", in: modeFlags{NodeConfig: "nc.yaml", Kubeconfig: "kc"}, err: "cannot be combined"},
		{name: "file with node name", in: modeFlags{NodeConfig: "nc.yaml", NodeName: "n"}, err: "cannot be combined"},
		{name: "pods without file", in: modeFlags{PodsDir: "pods", Kubeconfig: "kc", NodeName: "n"}, err: "--pods-dir needs --node-config"},
		{name: "none", in: modeFlags{NodeName: "n"}, err: "no source"},
		{name: "no node name", in: modeFlags{Kubeconfig: "kc"}, err: "--node-name or $NODE_NAME"},
	} {
		got, err := chooseMode(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %+v, %v; want error with %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}
