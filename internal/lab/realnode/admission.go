package realnode

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
)

//go:embed local-images.yaml
var localImages []byte

// WriteAdmission writes the MutatingAdmissionPolicy (and its binding) that
// sets imagePullPolicy: Never on containers of the lab's image, into dir,
// and returns the file for controlplane.ApplyFiles.
func WriteAdmission(dir string) (string, error) {
	path := filepath.Join(dir, "local-images.yaml")
	if err := os.WriteFile(path, localImages, 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}
