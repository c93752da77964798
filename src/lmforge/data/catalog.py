"""The dataset catalogue: names -> DatasetSpec, from our YAML or LLaMA-Factory's dataset_info.json (unchanged).

Catalogue file names are resolved inside the dataset root (realpath + commonpath), so an entry cannot reach
outside it with `..`, an absolute path or a symlink.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lmforge.config.config_loading import dataset_spec_from_mapping
from lmforge.config.schema import DataConfig, DatasetSpec
from lmforge.utils.errors import ConfigError, DataError, did_you_mean

CATALOG_NAMES = ("datasets.yaml", "datasets.yml", "dataset_info.json")
_LF_UNSUPPORTED_COLUMNS = ("images", "videos", "audios")


def resolve_inside(root: str | Path, name: str, where: str) -> str:
    """The real path of `name` under `root`; anything resolving outside the root is refused."""
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, name))
    if os.path.commonpath([real_root, target]) != real_root:
        raise DataError(f"{where}: file {name!r} resolves to {target}, outside the dataset root {real_root}")
    return target


def _read_catalog_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"data.catalog: file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: invalid catalogue: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a catalogue is a mapping of dataset names to entries")
    return data


def _lf_format(entry: dict[str, Any], where: str) -> tuple[str, dict[str, str]]:
    """LLaMA-Factory `formatting`/`ranking`/`columns` -> our format name and field -> column mapping."""
    columns = dict(entry.get("columns") or {})
    bad = [c for c in _LF_UNSUPPORTED_COLUMNS if c in columns]
    if bad:
        raise DataError(f"{where}: multimodal columns {bad} are not supported")
    if entry.get("ranking"):
        return "preference", columns
    if "kto_tag" in columns:
        return "kto", columns
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt", "openai"):
        raise DataError(f"{where}: unknown formatting {formatting!r}; expected alpaca, sharegpt or openai")
    if formatting == "alpaca" and set(columns) == {"prompt"}:  # LLaMA-Factory's pretraining-text entries
        return "text", {"text": columns["prompt"]}
    return formatting, columns


def spec_from_llamafactory(name: str, entry: dict[str, Any], root: Path, where: str) -> DatasetSpec:
    """One dataset_info.json entry read as LLaMA-Factory defines it."""
    fmt, columns = _lf_format(entry, where)
    if entry.get("file_name"):
        path = resolve_inside(root, entry["file_name"], where)
    elif entry.get("hf_hub_url"):
        path = entry["hf_hub_url"]
    else:
        raise DataError(f"{where}: only file_name and hf_hub_url sources are supported, entry has {sorted(entry)}")
    return DatasetSpec(
        name=name,
        path=path,
        format=fmt,
        columns=columns,
        tags=dict(entry.get("tags") or {}),
        split=entry.get("split", "train"),
        subset=entry.get("subset"),
        max_samples=entry.get("num_samples"),
    )


def spec_from_yaml(name: str, entry: dict[str, Any], root: Path, where: str) -> DatasetSpec:
    """Our catalogue entry: DatasetSpec keys, with `file_name` (inside the root) or `path` (local or hub id)."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(entry).__name__}")
    raw = dict(entry)
    file_name = raw.pop("file_name", None)
    if file_name:
        raw["path"] = resolve_inside(root, file_name, where)
    elif raw.get("path") and not _is_hub_like(raw["path"], root):
        raw["path"] = resolve_inside(root, raw["path"], where)
    raw.setdefault("name", name)
    return dataset_spec_from_mapping(raw, where)


def _is_hub_like(path: str, root: Path) -> bool:
    from lmforge.data.readers import is_hub_id

    return is_hub_id(path) and not (root / path).exists()


@dataclass
class Catalog:
    """Entries are converted when used, so one unsupported entry does not break the others."""

    path: Path
    root: Path
    entries: dict[str, Any]

    def spec(self, name: str, where: str = "data.datasets") -> DatasetSpec:
        if name not in self.entries:
            raise ConfigError(
                f"{where}: unknown dataset {name!r}{did_you_mean(name, self.entries)}; "
                f"catalogue {self.path} has: {', '.join(sorted(self.entries))}"
            )
        convert = spec_from_llamafactory if self.path.suffix == ".json" else spec_from_yaml
        return convert(name, self.entries[name], self.root, f"{self.path}: {name}")

    def listing(self) -> list[str]:
        """One line per dataset: name, format and where it is read from (or why it cannot be used)."""
        lines = []
        for name in sorted(self.entries):
            try:
                spec = self.spec(name)
            except (ConfigError, DataError) as exc:
                lines.append(f"{name:<24} unusable: {exc}")
                continue
            lines.append(f"{name:<24} {spec.format:<10} {spec.path}")
        return lines


def load_catalog(path: str | Path, dataset_dir: str | None = None) -> Catalog:
    """A catalogue file; file names resolve under dataset_dir, or the catalogue's folder by default."""
    path = Path(path)
    return Catalog(path, Path(dataset_dir) if dataset_dir else path.parent, _read_catalog_file(path))


def find_catalog(data: DataConfig) -> Path | None:
    if data.catalog:
        return Path(data.catalog)
    if data.dataset_dir:
        for name in CATALOG_NAMES:
            if (Path(data.dataset_dir) / name).is_file():
                return Path(data.dataset_dir) / name
    return None


def resolve_specs(entries: list[Any], data: DataConfig, where: str) -> list[DatasetSpec]:
    """Catalogue names and inline mappings of `data.datasets` / `data.eval_datasets` -> DatasetSpecs."""
    catalog: Catalog | None = None
    specs = []
    for i, entry in enumerate(entries):
        if isinstance(entry, dict):
            specs.append(dataset_spec_from_mapping(entry, f"{where}[{i}]"))
            continue
        if catalog is None:
            path = find_catalog(data)
            if path is None:
                raise ConfigError(
                    f"{where}[{i}]: {entry!r} is a catalogue name but no catalogue is set; set data.catalog "
                    f"(or data.dataset_dir holding {' / '.join(CATALOG_NAMES)}), or give {{path:, format:}} inline"
                )
            catalog = load_catalog(path, data.dataset_dir)
        specs.append(catalog.spec(str(entry), f"{where}[{i}]"))
    return specs
