package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// untar reads a tarball into name → bytes, symlinks as "-> target".
func untar(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeReg:
			b, _ := io.ReadAll(tr)
			files[h.Name] = b
		case tar.TypeSymlink:
			files[h.Name] = []byte("-> " + h.Linkname)
		}
	}
}

// TestWrite: the tarball is an OCI layout whose index names the three
// images, every descriptor's digest and size match its blob, and the layer
// holds flock-lab, busybox and busybox's applet links.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	inputs := Inputs{FlockLab: filepath.Join(dir, "flock-lab"), Busybox: filepath.Join(dir, "busybox")}
	os.WriteFile(inputs.FlockLab, []byte("flock-lab binary"), 0o755)
	os.WriteFile(inputs.Busybox, []byte("busybox binary"), 0o755)
	var buf bytes.Buffer
	if err := Write(&buf, inputs); err != nil {
		t.Fatal(err)
	}
	files := untar(t, buf.Bytes())
	blob := func(d descriptorJSON) []byte {
		t.Helper()
		b, ok := files["blobs/sha256/"+d.Digest[len("sha256:"):]]
		if !ok {
			t.Fatalf("no blob %s", d.Digest)
		}
		sum := sha256.Sum256(b)
		if "sha256:"+hex.EncodeToString(sum[:]) != d.Digest || len(b) != d.Size {
			t.Fatalf("blob %s: digest or size (%d, want %d) wrong", d.Digest, len(b), d.Size)
		}
		return b
	}
	var index struct{ Manifests []descriptorJSON }
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range index.Manifests {
		names = append(names, m.Annotations["io.containerd.image.name"])
		var manifest struct {
			Config descriptorJSON
			Layers []descriptorJSON
		}
		if err := json.Unmarshal(blob(m), &manifest); err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Config struct{ Entrypoint, Env []string }
			Rootfs struct {
				DiffIDs []string `json:"diff_ids"`
			}
		}
		if err := json.Unmarshal(blob(manifest.Config), &cfg); err != nil {
			t.Fatal(err)
		}
		if len(manifest.Layers) != 1 || !slices.Equal(cfg.Rootfs.DiffIDs, []string{manifest.Layers[0].Digest}) {
			t.Errorf("%s: layers %v, diff_ids %v", names[len(names)-1], manifest.Layers, cfg.Rootfs.DiffIDs)
		}
		wantEntry := []string(nil)
		if names[len(names)-1] == Pause {
			wantEntry = []string{"/bin/flock-lab", "pause"}
		}
		if !slices.Equal(cfg.Config.Entrypoint, wantEntry) || !slices.Equal(cfg.Config.Env, []string{"PATH=/bin"}) {
			t.Errorf("%s: entrypoint %v env %v", names[len(names)-1], cfg.Config.Entrypoint, cfg.Config.Env)
		}
		layer := untar(t, blob(manifest.Layers[0]))
		if string(layer["bin/flock-lab"]) != "flock-lab binary" || string(layer["bin/busybox"]) != "busybox binary" {
			t.Errorf("layer binaries wrong")
		}
		for _, a := range []string{"sh", "nc", "ping"} {
			if string(layer["bin/"+a]) != "-> busybox" {
				t.Errorf("bin/%s: %q, want a link to busybox", a, layer["bin/"+a])
			}
		}
	}
	slices.Sort(names)
	if want := []string{Pause, FlockLab, Lab}; !slices.Equal(names, want) {
		t.Errorf("image names %v, want %v", names, want)
	}
	var again bytes.Buffer
	Write(&again, inputs)
	if !bytes.Equal(untar(t, again.Bytes())["index.json"], files["index.json"]) {
		t.Error("a second build of the same inputs gives another index")
	}
}

type descriptorJSON struct {
	Digest      string
	Size        int
	Annotations map[string]string
}
