// Command fcrender renders a KrakenD flexible-configuration template the way KrakenD CE v2.13
// does (krakend-flexibleconfig template.go), so the gateway configs can be checked on machines
// without a krakend binary. It reads the same environment variables as `krakend run`:
// FC_SETTINGS (dir of *.json, each exposed as .<basename>), FC_TEMPLATES (dir of *.tmpl, parsed
// as sub-templates), FC_PARTIALS (dir read by `include`) and FC_OUT (output file; stdout if unset).
// Unlike KrakenD, which logs a template error and then fails on the raw template, it stops at the
// first error and refuses output that is not valid JSON.
//
//	FC_SETTINGS=etc/enroll/settings FC_TEMPLATES=etc/enroll/templates \
//	    go run ./.ci/fcrender etc/enroll/krakend.tmpl
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

func main() {
	if len(os.Args) != 2 {
		fail(fmt.Errorf("usage: fcrender CONFIG_TEMPLATE"))
	}
	out, err := render(os.Args[1])
	if err != nil {
		fail(err)
	}
	if dest := os.Getenv("FC_OUT"); dest != "" {
		err = os.WriteFile(dest, out, 0o600)
	} else {
		_, err = os.Stdout.Write(out)
	}
	if err != nil {
		fail(err)
	}
}

func render(configFile string) ([]byte, error) {
	vars := map[string]interface{}{}
	if err := eachFile(os.Getenv("FC_SETTINGS"), ".json", func(file string) error {
		raw, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var v map[string]interface{} // KrakenD accepts only a JSON object per settings file
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		vars[strings.TrimSuffix(filepath.Base(file), ".json")] = v
		return nil
	}); err != nil {
		return nil, err
	}
	var templates []string
	if err := eachFile(os.Getenv("FC_TEMPLATES"), ".tmpl", func(file string) error {
		templates = append(templates, file)
		return nil
	}); err != nil {
		return nil, err
	}

	partials := os.Getenv("FC_PARTIALS")
	funcs := sprig.GenericFuncMap() // the generic map: `env` included, as in KrakenD
	funcs["marshal"] = func(v interface{}) string { b, _ := json.Marshal(v); return string(b) }
	funcs["include"] = func(v interface{}) string { // raw file content: not executed as a template
		b, _ := os.ReadFile(path.Join(partials, v.(string)))
		return string(b)
	}

	tmpl, err := template.New("config").Funcs(funcs).ParseFiles(configFile)
	if err != nil {
		return nil, err
	}
	if len(templates) > 0 {
		if tmpl, err = tmpl.ParseFiles(templates...); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, filepath.Base(configFile), vars); err != nil {
		return nil, err
	}
	if !json.Valid(buf.Bytes()) {
		var v interface{}
		return nil, fmt.Errorf("rendered %s is not valid JSON: %v", configFile, json.Unmarshal(buf.Bytes(), &v))
	}
	return buf.Bytes(), nil
}

// eachFile calls fn for every file in dir whose name ends in suffix, in directory order.
func eachFile(dir, suffix string, fn func(string) error) error {
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), suffix) {
			if err := fn(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fcrender:", err)
	os.Exit(1)
}
