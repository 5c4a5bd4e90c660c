"""The `.nnm` model file (docs/format.md): its codes, reader (`read`), writer (`write`) and backup."""
