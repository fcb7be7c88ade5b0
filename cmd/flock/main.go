// Command flock is the CNI plugin. It is deliberately thin: it parses the
// network config, hands each call to the node agent over a unix socket and
// prints the agent's result in the version the runtime asked for.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/fritzlab/flock/pkg/rpc"
)

// NetConf is flock's network configuration.
type NetConf struct {
	types.PluginConf
	// Socket is the agent's socket; default rpc.DefaultSocket.
	Socket string `json:"socket,omitempty"`
	// TimeoutSeconds bounds one call to the agent; default 30.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// MTU of the pod interface; default 1500.
	MTU int `json:"mtu,omitempty"`
}

func parseConf(stdin []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "failed to parse network config", err.Error())
	}
	if conf.Socket == "" {
		conf.Socket = rpc.DefaultSocket
	}
	if !filepath.IsAbs(conf.Socket) {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", fmt.Sprintf("socket %q is not an absolute path", conf.Socket))
	}
	if conf.TimeoutSeconds == 0 {
		conf.TimeoutSeconds = 30
	}
	if conf.TimeoutSeconds < 0 || conf.TimeoutSeconds > 600 {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", fmt.Sprintf("timeoutSeconds %d is outside 1..600", conf.TimeoutSeconds))
	}
	if conf.MTU != 0 && (conf.MTU < 1280 || conf.MTU > 65535) {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", fmt.Sprintf("mtu %d is outside 1280..65535", conf.MTU))
	}
	return conf, nil
}

// call forwards one request and maps failures to CNI errors: an agent that
// cannot be reached means "try again later" (unreachableCode).
func call(conf *NetConf, req *rpc.Request, unreachableCode uint) (*rpc.Response, error) {
	req.Network = conf.Name
	req.MTU = conf.MTU
	resp, err := rpc.Call(context.Background(), conf.Socket, req, time.Duration(conf.TimeoutSeconds)*time.Second)
	var ue *rpc.UnreachableError
	switch {
	case errors.As(err, &ue):
		return nil, types.NewError(unreachableCode, "flock agent unreachable", ue.Err.Error())
	case err != nil:
		return nil, types.NewError(types.ErrInternal, "flock agent call failed", err.Error())
	case resp.Error != nil:
		return nil, types.NewError(resp.Error.Code, resp.Error.Msg, resp.Error.Details)
	}
	return resp, nil
}

func request(op rpc.Op, args *skel.CmdArgs) *rpc.Request {
	return &rpc.Request{Op: op, ContainerID: args.ContainerID, Netns: args.Netns, IfName: args.IfName, Args: args.Args}
}

func cmdAdd(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	resp, err := call(conf, request(rpc.OpAdd, args), types.ErrTryAgainLater)
	if err != nil {
		return err
	}
	if resp.Result == nil {
		return types.NewError(types.ErrInternal, "flock agent returned no result", "")
	}
	resp.Result.CNIVersion = types100.ImplementedSpecVersion
	return types.PrintResult(resp.Result, conf.CNIVersion)
}

func cmdDel(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	_, err = call(conf, request(rpc.OpDel, args), types.ErrTryAgainLater)
	return err
}

func cmdCheck(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	if conf.RawPrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", "prevResult is required for CHECK")
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "failed to parse prevResult", err.Error())
	}
	prev, err := types100.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "failed to convert prevResult", err.Error())
	}
	req := request(rpc.OpCheck, args)
	req.PrevResult = prev
	_, err = call(conf, req, types.ErrTryAgainLater)
	return err
}

func cmdStatus(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	// STATUS has its own code for "cannot serve ADD now".
	_, err = call(conf, &rpc.Request{Op: rpc.OpStatus}, types.ErrPluginNotAvailable)
	return err
}

func cmdGC(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	req := &rpc.Request{Op: rpc.OpGC}
	for _, a := range conf.ValidAttachments {
		req.ValidAttachments = append(req.ValidAttachments, rpc.Attachment{ContainerID: a.ContainerID, IfName: a.IfName})
	}
	_, err = call(conf, req, types.ErrTryAgainLater)
	return err
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: cmdAdd, Del: cmdDel, Check: cmdCheck, Status: cmdStatus, GC: cmdGC,
	}, version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"), "flock: routed dual-stack pod networking (hands every call to flock-agent)")
}
