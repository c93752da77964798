"""API keys read from a file: the first line, and errors that name the option and the file."""

from __future__ import annotations

import pytest

from lmforge.generate.backends import read_api_key
from lmforge.generate.generate_config import GeneratorConfig
from lmforge.utils.errors import ConfigError


def test_the_key_is_the_first_line_of_the_file(tmp_path) -> None:
    path = tmp_path / "key"
    path.write_text("sk-secret \nignored\n")
    assert read_api_key(GeneratorConfig(api_key_file=str(path))) == "sk-secret"


@pytest.mark.parametrize("content", [None, "\nsk-late\n"])
def test_a_missing_or_empty_key_file_is_a_config_error_naming_it(tmp_path, content) -> None:
    path = tmp_path / "key"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=rf"generator.api_key_file {path}: "):
        read_api_key(GeneratorConfig(api_key_file=str(path)))
