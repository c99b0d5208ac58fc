package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// outputFlag is the -o flag of the listing commands: table or json.
type outputFlag string

func (o *outputFlag) register(cmd *cobra.Command) {
	*o = "table"
	cmd.Flags().StringVarP((*string)(o), "output", "o", "table", "output format: table or json")
}

// check refuses a format other than table or json, before any work.
func (o outputFlag) check() error {
	if o != "table" && o != "json" {
		return fmt.Errorf("-o %q: want table or json", string(o))
	}
	return nil
}

// write prints v as indented JSON, or as the table that table prints.
func (o outputFlag) write(out io.Writer, v any, table func(io.Writer)) error {
	if o == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	table(out)
	return nil
}
