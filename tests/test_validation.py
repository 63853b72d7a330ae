"""Every option range and every value read from a model, op rules, mapping or project config file is checked: a bad
one is one line on standard error naming the option, or the file and the key, and exit code 2 (never a traceback,
never exit 3, never a silent exit 0)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from nsys_doctor.cli.main import main
from nsys_doctor.config import find_config, gate_settings
from nsys_doctor.errors import UsageError

from .conftest import DATA, SAMPLE, TRACES, needs_shared

CONFIG = DATA / "llama_mini_config.json"  # the 16-layer model of the bundled sample trace
MINI = json.loads(CONFIG.read_text())
RULE = 'pattern = "my_gemv"\nfamily = "gemv"\ncategory = "GEMV"\nop = "linear (GEMV)"\n'


def one_line_error(capsys: pytest.CaptureFixture[str], args: list[str], *words: str) -> str:
    """Run the CLI; it must exit 2 with one line naming every word (case-insensitive)."""
    code = main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("nsys-doctor: error: "), lines[0]
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])
    return lines[0]


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def config_json(tmp_path: Path, name: str = "config.json", **changes: object) -> Path:
    """The sample's model config with keys changed (a value of ``...`` removes the key)."""
    cfg = {k: v for k, v in MINI.items() if changes.get(k, 0) is not ...}
    cfg |= {k: v for k, v in changes.items() if v is not ...}
    return write(tmp_path / name, json.dumps(cfg))


# ------------------------------------------------------------------------------------------------ --model (JSON)

BAD_CONFIG_VALUES = [
    ({"num_experts": "abc", "num_experts_per_tok": 2}, "'num_experts'"),
    ({"num_experts": -4, "num_experts_per_tok": 2}, "'num_experts'"),
    ({"num_local_experts": 8.5, "num_experts_per_tok": 2}, "'num_local_experts'"),
    ({"num_experts": 4, "num_experts_per_tok": 8}, "'num_experts_per_tok'"),
    ({"num_experts": 4, "num_experts_per_tok": 0}, "'num_experts_per_tok'"),
    ({"num_experts": 4, "num_experts_per_tok": 2, "decoder_sparse_step": 0}, "'decoder_sparse_step'"),
    ({"num_experts": 4, "num_experts_per_tok": 2, "mlp_only_layers": "0"}, "'mlp_only_layers'"),
    ({"num_experts": 4, "num_experts_per_tok": 2, "mlp_only_layers": [-1]}, "'mlp_only_layers' entry"),
    ({"num_experts": 4, "num_experts_per_tok": 2, "n_shared_experts": "two"}, "'n_shared_experts'"),
    ({"num_experts": 4, "num_experts_per_tok": 2, "first_k_dense_replace": -1}, "'first_k_dense_replace'"),
    ({"hidden_size": -1}, "'hidden_size'"),
    ({"hidden_size": 0}, "'hidden_size'"),
    ({"hidden_size": 2048.0}, "'hidden_size'"),
    ({"hidden_size": "2048"}, "'hidden_size'"),
    ({"hidden_size": True}, "'hidden_size'"),
    ({"hidden_size": 2**40}, "'hidden_size'"),
    ({"num_hidden_layers": [16]}, "'num_hidden_layers'"),
    ({"num_hidden_layers": 1_000_000}, "num_hidden_layers"),
    ({"num_attention_heads": None, "head_dim": ...}, "'num_attention_heads'"),
    ({"head_dim": -64}, "'head_dim'"),
    ({"head_dim": ..., "num_attention_heads": 3000}, "'head_dim'"),
    ({"vocab_size": ...}, "'vocab_size'"),
    ({"intermediate_size": {"a": 1}}, "'intermediate_size'"),
    ({"text_config": [MINI]}, "'text_config'"),
    ({"quantization_config": ["awq"]}, "'quantization_config'"),
    ({"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 0}}, "quantization_config.group_size"),
    ({"torch_dtype": 16}, "'torch_dtype'"),
]


@pytest.mark.parametrize(("changes", "key"), BAD_CONFIG_VALUES)
def test_bad_config_values_name_the_key_and_file(tmp_path, capsys, changes, key):
    path = config_json(tmp_path, **changes)
    one_line_error(capsys, ["roofline", str(SAMPLE), "--model", str(path)], key, str(path))


def test_bad_config_value_inside_text_config(tmp_path, capsys):
    path = write(tmp_path / "mm.json", json.dumps({"text_config": MINI | {"vocab_size": "big"}}))
    one_line_error(capsys, ["roofline", str(SAMPLE), "--model", str(path)], str(path), "text_config", "'vocab_size'")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[1, 2]", ["not a json object"]),
        ('"hidden_size"', ["not a json object"]),
        ("", ["not a json object"]),
        ("{not json", ["not valid json"]),
        (b"\xff\xfe\x00\x01binary", ["not utf-8"]),
        ("\ufeff" + json.dumps(MINI | {"hidden_size": "x"}), ["'hidden_size'"]),  # a BOM is read past
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", ["nested too deeply"]),
    ],
)
def test_malformed_model_json(tmp_path, capsys, content, words):
    path = write(tmp_path / "config.json", content)
    one_line_error(capsys, ["roofline", str(SAMPLE), "--model", str(path)], str(path), *words)


def test_model_that_is_not_a_file(tmp_path, capsys):
    one_line_error(
        capsys, ["roofline", str(SAMPLE), "--model", str(tmp_path / "nope.json")], "nope.json", "cannot read"
    )
    one_line_error(capsys, ["roofline", str(SAMPLE), "--model", str(tmp_path)], str(tmp_path), "cannot read")


def test_null_head_dim_fits_the_sample(tmp_path, capsys):
    path = config_json(tmp_path, head_dim=None)
    assert main(["roofline", str(SAMPLE), "--model", str(path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"]["dims"]["head_dim"] == 2048 // 32


# ------------------------------------------------------------------------------------------------ --model (TOML)

SHAPE = '[[shape]]\nname = "w"\nM = 4\nK = 8\n'


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("layers = true\n" + SHAPE, ["layers", "true"]),
        ("layers = 0\n" + SHAPE, ["layers"]),
        ("layers = 2.5\n" + SHAPE, ["layers"]),
        ('dtype = "int4"\ngroup_size = "abc"\n' + SHAPE, ["group_size", "'abc'"]),
        ("group_size = -1\n" + SHAPE, ["group_size"]),
        ("dtype = 5\n" + SHAPE, ["dtype", "must be a string"]),
        ('dtype = "int3"\n' + SHAPE, ["dtype", "unknown dtype 'int3'"]),
        ("name = 7\n" + SHAPE, ["name"]),
        ("shape = 5\n", ["no [[shape]] tables"]),
        ("layers = 2\n", ["no [[shape]] tables"]),
        ("shape = [1]\n", ["shape 1", "not a table"]),
        ('[[shape]]\nname = "w"\nM = 4\n', ["shape 1", "missing k"]),
        ('[[shape]]\nname = "w"\nM = -4\nK = 8\n', ["shape 1 (w)", "M must be a positive integer"]),
        ('[[shape]]\nname = "w"\nM = 4\nK = 8\ncount = 1.5\n', ["shape 1 (w)", "count"]),
        ('[[shape]]\nname = "w"\nM = 4\nK = 8\nper_layer = "no"\n', ["shape 1 (w)", "per_layer"]),
        ('[[shape]]\nname = "w"\nM = 4\nK = 8\nlabel = 3\n', ["shape 1 (w)", "label"]),
        ('[[shape]]\nname = "w"\nM = 4\nK = 8\ndtype = "int4"\ngroup_size = 0\n', ["shape 1 (w)", "group_size"]),
        ('[[shape]]\nname = "w"\nM = 4\nK = 8\ndtype = ["bf16"]\n', ["shape 1 (w)", "dtype"]),
        ("layers = 1000000\n" + SHAPE.replace("K = 8", "K = 8\ncount = 2"), ["kernels per step"]),
        ("layers = 2000000000\n" + SHAPE + "per_layer = false\n", ["layers must be at most"]),
        (SHAPE.replace("K = 8", "K = 8\ncount = 2000000000"), ["kernels per step"]),
        ("[[shape]\n", ["neither json nor valid toml"]),
        (b"\x00\x9f\x92\x96 binary", ["not utf-8"]),
    ],
)
def test_malformed_shapes_file(tmp_path, capsys, content, words):
    path = write(tmp_path / "shapes.toml", content)
    one_line_error(capsys, ["roofline", str(SAMPLE), "--model", str(path)], str(path), *words)


# ------------------------------------------------------------------------------------------------ report --model


def test_report_with_a_missing_model_file_is_an_error(tmp_path, capsys):
    one_line_error(capsys, ["report", str(SAMPLE), "--model", str(tmp_path / "nope.json")], "nope.json")


def test_report_with_a_malformed_model_file_is_an_error(tmp_path, capsys):
    path = config_json(tmp_path, num_experts="abc", num_experts_per_tok=2)
    one_line_error(capsys, ["report", str(SAMPLE), "--model", str(path)], str(path), "'num_experts'")


def test_report_model_options(capsys):
    one_line_error(capsys, ["report", str(SAMPLE), "--model", str(CONFIG), "--dtype", "nonsense"], "--dtype")
    one_line_error(capsys, ["report", str(SAMPLE), "--dtype", "bf16"], "--dtype", "--model")
    one_line_error(capsys, ["report", str(SAMPLE), "--peak-bw", "3.35"], "--peak-bw", "--model")
    for bad in ("-3", "0", "nan", "inf", "1e400", ""):
        one_line_error(capsys, ["report", str(SAMPLE), "--model", str(CONFIG), "--peak-bw", bad], "--peak-bw")


def test_report_model_with_alias_dtype_still_runs(capsys):
    # "bfloat16" is the config's own spelling: accepted, and the sample's model fits
    assert main(["report", str(SAMPLE), "--model", str(CONFIG), "--dtype", "bfloat16", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["roofline"]["model"]["weights"]["dtype"] == "bf16"


def test_report_model_that_does_not_fit_stays_a_note(tmp_path, capsys):
    # 8 layers of the same shapes: the sample runs 16, so the model does not fit: a note, exit 0
    path = config_json(tmp_path, num_hidden_layers=8)
    assert main(["report", str(SAMPLE), "--model", str(path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["roofline"] is None
    assert any(n.startswith("roofline skipped: model config.json does not fit") for n in data["notes"])


# ------------------------------------------------------------------------------------------------ option ranges


@pytest.mark.parametrize("value", ["-3", "0", "nan", "inf", "-inf", "1e400", "", "fast", "3 furlongs", "1e-30", "5e30"])
@pytest.mark.parametrize("option", ["--peak-bw", "--peak-flops"])
def test_peak_options_refuse_non_positive_and_non_finite(capsys, option, value):
    one_line_error(capsys, ["roofline", str(SAMPLE), "--model", str(CONFIG), option, value], option)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--group-size", "0", "--dtype", "int4"], "--group-size"),
        (["--group-size", "-1", "--dtype", "int4"], "--group-size"),
        (["--group-size", "abc", "--dtype", "int4"], "--group-size"),
        (["--group-size", "64"], "--group-size"),
        (["--dtype", "nonsense"], "--dtype"),
        (["--dtype", ""], "--dtype"),
        (["--tokens", "0"], "--tokens"),
        (["--tokens", "-5"], "--tokens"),
        (["--tokens", "1.5"], "--tokens"),
        (["--tokens", str(10**30)], "--tokens"),
        (["--group-size", str(10**30), "--dtype", "int4"], "--group-size"),
    ],
)
def test_roofline_option_ranges(capsys, args, option):
    one_line_error(capsys, ["roofline", str(SAMPLE), "--model", str(CONFIG), *args], option)


@pytest.mark.parametrize("command", ["report", "nccl"])
@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_top_and_jobs_ranges(capsys, command, value):
    one_line_error(capsys, [command, str(SAMPLE), "--top", value], "--top")
    one_line_error(capsys, [command, str(SAMPLE), "--jobs", value], "--jobs")


@pytest.mark.parametrize("address", ["local:0", "local:-2", "local:x", "local:", " "])
def test_nccl_dask_local_worker_count(capsys, address):
    one_line_error(capsys, ["nccl", str(SAMPLE), "--dask", address], "--dask")


# ------------------------------------------------------------------------------------------------ --ops files

OPS_CASES = [
    (b"\xff\xfe\x00\x01", ["not utf-8"]),
    ("caf\xe9".encode("latin-1"), ["not utf-8"]),
    ("this is not toml", ["not valid toml"]),
    ("rule = 5\n", ["'rule' must be an array of tables"]),
    ('rule = ["x"]\n', ["rule 1", "not a table"]),
    ('[rule]\npattern = "x"\n', ["'rule' must be an array of tables"]),
    ("[[rules]]\n" + RULE, ["unknown top-level key(s) rules"]),
    ('[[rule]]\nfamily = "gemv"\ncategory = "GEMV"\nop = "x"\n', ["rule 1", "missing key(s) pattern"]),
    ("[[rule]]\n" + RULE + "\n[[rule]]\n" + RULE.replace("my_gemv", "(unclosed"), ["rule 2", "not a valid regex"]),
    ("[[rule]]\n" + RULE.replace('"my_gemv"', '"a{4294967296}"'), ["rule 1", "not a valid regex"]),
    ("[[rule]]\n" + RULE.replace('"my_gemv"', '"' + "(" * 5000 + ")" * 5000 + '"'), ["rule 1", "not a valid regex"]),
    ("[[rule]]\n" + RULE.replace('"my_gemv"', '""'), ["rule 1", "empty pattern"]),
    ("[[rule]]\n" + RULE.replace('"my_gemv"', "5"), ["rule 1", "pattern must be a string"]),
    ("[[rule]]\n" + RULE.replace('"gemv"', '"GEMV kernels"'), ["rule 1", "family", "kebab-case"]),
    ("[[rule]]\n" + RULE.replace('category = "GEMV"', 'category = "matmul"'), ["rule 1", "unknown category"]),
    ("[[rule]]\n" + RULE.replace('op = "linear (GEMV)"', "op = 1.5"), ["rule 1", "op must be a string"]),
    ("[[rule]]\n" + RULE.replace('op = "linear (GEMV)"', 'op = " "'), ["rule 1", "empty op"]),
    ("[[rule]]\n" + RULE + "priority = 1\n", ["rule 1", "unknown key(s) priority"]),
]


@pytest.mark.parametrize(("content", "words"), OPS_CASES)
@pytest.mark.parametrize("command", ["report", "roofline", "nccl"])
def test_malformed_ops_file(tmp_path, capsys, command, content, words):
    path = write(tmp_path / "ops.toml", content)
    extra = ["--model", str(CONFIG)] if command == "roofline" else []
    one_line_error(capsys, [command, str(SAMPLE), *extra, "--ops", str(path)], str(path), *words)


def test_ops_file_that_is_not_a_file(tmp_path, capsys):
    one_line_error(capsys, ["report", str(SAMPLE), "--ops", str(tmp_path / "nope.toml")], "nope.toml", "cannot read")
    one_line_error(capsys, ["report", str(SAMPLE), "--ops", str(tmp_path)], str(tmp_path), "cannot read")


# ------------------------------------------------------------------------------------------------ --mapping files

MAP_CASES = [
    (b"\xff\xfe", ["not utf-8"]),
    ("not toml at all", ["not valid toml"]),
    ("", ["expected [[map]] tables"]),
    ('[map]\nkernel = "a"\nshape = "o"\n', ["expected [[map]] tables"]),
    ('maps = 1\n[[map]]\nkernel = "a"\nshape = "o"\n', ["unknown top-level key(s) maps"]),
    ("map = [1]\n", ["map 1", "not a table"]),
    ('[[map]]\nkernel = "a"\n', ["map 1", "missing shape"]),
    ('[[map]]\nshape = "o"\n', ["map 1", "missing kernel"]),
    ('[[map]]\nkernel = 5\nshape = "o"\n', ["map 1", "kernel must be a non-empty string"]),
    ('[[map]]\nkernel = ""\nshape = "o"\n', ["map 1", "kernel must be a non-empty string"]),
    ('[[map]]\nkernel = "a"\nshape = ["o"]\n', ["map 1", "shape must be a non-empty string"]),
    ('[[map]]\nkernel = "("\nshape = "o"\n', ["map 1", "not a valid regex"]),
    ('[[map]]\nkernel = "a{4294967296}"\nshape = "o"\n', ["map 1", "not a valid regex"]),
    ('[[map]]\nkernel = "a"\nshape = "o"\ngrid = "0x64x1"\n', ["map 1", "grid"]),
    ('[[map]]\nkernel = "a"\nshape = "o"\ngrid = [2, 64, 1]\n', ["map 1", "grid"]),
    ('[[map]]\nkernel = "a"\nshape = "o"\nrows = 1\n', ["map 1", "unknown key(s) rows"]),
    ('[[map]]\nkernel = "a"\nshape = "o"\n[[map]]\nkernel = "b"\nshape = "attention"\n', ["attention"]),
]


@pytest.mark.parametrize(("content", "words"), MAP_CASES)
def test_malformed_mapping_file(tmp_path, capsys, content, words):
    path = write(tmp_path / "map.toml", content)
    one_line_error(capsys, ["roofline", str(SAMPLE), "--model", str(CONFIG), "--mapping", str(path)], str(path), *words)


def test_mapping_file_that_is_not_a_file(tmp_path, capsys):
    args = ["roofline", str(SAMPLE), "--model", str(CONFIG), "--mapping", str(tmp_path / "nope.toml")]
    one_line_error(capsys, args, "nope.toml", "cannot read")


# ------------------------------------------------------------------------------------------------ project config


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """An empty project directory as the current directory (the config is looked up from there)."""
    d = tmp_path / "project"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("ops = 5\n", ["key ops", "must be the path"]),
        ('ops = ""\n', ["key ops"]),
        ('ops = "missing.toml"\n', ["missing.toml", "named by", "key ops"]),
        ('ops-rule = "x"\n', ["key ops-rule", "array of tables"]),
        ("ops-rule = [5]\n", ["key ops-rule, rule 1", "not a table"]),
        (
            "[[ops-rule]]\n" + RULE.replace('pattern = "my_gemv"\n', ""),
            ["key ops-rule, rule 1", "missing key(s) pattern"],
        ),
        ("[[ops-rule]]\n" + RULE + "[[ops-rule]]\n" + RULE.replace("my_gemv", "(x"), ["ops-rule, rule 2", "regex"]),
        ("[[ops-rule]]\n" + RULE.replace('"gemv"', "1"), ["ops-rule, rule 1", "family must be a string"]),
        ("ops = [\n", ["cannot read the project config"]),
        (b"ops = '\xff'\n", ["cannot read the project config", "not utf-8"]),
    ],
)
def test_bad_values_in_nsys_doctor_toml(project, capsys, content, words):
    path = write(project / "nsys-doctor.toml", content)
    one_line_error(capsys, ["report", str(SAMPLE)], str(path), *words)


def test_bad_values_in_pyproject(project, capsys):
    path = write(project / "pyproject.toml", "[tool]\nnsys-doctor = 5\n")
    one_line_error(capsys, ["report", str(SAMPLE)], str(path), "tool.nsys-doctor must be a table")
    write(path, "[[tool.nsys-doctor.ops-rule]]\n" + RULE.replace('"GEMV"', '"gemv"'))
    one_line_error(capsys, ["report", str(SAMPLE)], str(path), "key tool.nsys-doctor.ops-rule, rule 1", "category")
    write(path, '[tool.nsys-doctor]\nops = "rules/ops.toml"\n')
    write(project / "rules", b"")  # a file where the folder should be
    one_line_error(capsys, ["report", str(SAMPLE)], "ops.toml", "key tool.nsys-doctor.ops")


def test_config_ops_file_is_validated_too(project, capsys):
    write(project / "nsys-doctor.toml", 'ops = "ops.toml"\n')
    rules = write(project / "ops.toml", "[[rule]]\n" + RULE.replace("my_gemv", "[unclosed"))
    one_line_error(capsys, ["report", str(SAMPLE)], str(rules), "rule 1", "regex", "named by", "key ops")


def test_good_config_rules_still_apply(project, capsys):
    write(project / "nsys-doctor.toml", 'ops = "ops.toml"\n[[ops-rule]]\n' + RULE)
    write(project / "ops.toml", "[[rule]]\n" + RULE.replace("my_gemv", "other_gemv"))
    assert main(["report", str(SAMPLE), "--format", "json"]) == 0
    capsys.readouterr()


# ------------------------------------------------------------------------------------------------ gate settings


def gate_of(project: Path, content: str, name: str = "nsys-doctor.toml") -> tuple[float | None, dict[str, float]]:
    write(project / name, content)
    return gate_settings(find_config(project))


def test_gate_settings_values(project):
    assert gate_settings(find_config(project)) == (None, {})  # no config at all
    assert gate_of(project, "ops-rule = []\n") == (None, {})  # a config without a gate table
    assert gate_of(project, "[gate]\nthreshold = 5\n") == (5.0, {})
    assert gate_of(project, "[gate]\nthreshold = 2.5\nfamilies = { gemv = 3, attention-decode = 0 }\n") == (
        2.5,
        {"gemv": 3.0, "attention-decode": 0.0},
    )
    assert gate_of(project, "[gate.families]\ngemv = 1\n") == (None, {"gemv": 1.0})
    (project / "nsys-doctor.toml").unlink()
    py = "[tool.nsys-doctor.gate]\nthreshold = 7\n[tool.nsys-doctor.gate.families]\nnorm = 4.5\n"
    assert gate_of(project, py, "pyproject.toml") == (7.0, {"norm": 4.5})


@pytest.mark.parametrize(
    ("content", "key", "words"),
    [
        ('[gate]\nthreshold = "abc"\n', "gate.threshold", ["must be a number", "'abc'"]),
        ("[gate]\nthreshold = -1\n", "gate.threshold", [">= 0"]),
        ("[gate]\nthreshold = nan\n", "gate.threshold", ["finite"]),
        ("[gate]\nthreshold = inf\n", "gate.threshold", ["finite"]),
        ("[gate]\nthreshold = true\n", "gate.threshold", ["must be a number"]),
        ("[gate]\nthreshold = [5]\n", "gate.threshold", ["must be a number"]),
        ('[gate]\nfamilies = "gemv"\n', "gate.families", ["must be a table"]),
        ("[gate]\nfamilies = [1, 2]\n", "gate.families", ["must be a table"]),
        ('[gate]\nfamilies = { gemv = "x" }\n', "gate.families.gemv", ["must be a number"]),
        ("[gate]\nfamilies = { gemv = -3 }\n", "gate.families.gemv", [">= 0"]),
        ("[gate]\nfamilies = { gemv = nan }\n", "gate.families.gemv", ["finite"]),
        ("[gate]\nfamilies = { gemv = -inf }\n", "gate.families.gemv", ["finite"]),
        ("[gate]\nfamilies = { gemv = { max = 3 } }\n", "gate.families.gemv", ["must be a number"]),
        ("[gate]\nfamilies = { GEMV = 3 }\n", "gate.families", ["'GEMV' is not an operation family id"]),
        ("gate = 5\n", "gate", ["must be a table"]),
        ("[gate]\ntreshold = 5\n", "gate", ["unknown key(s) treshold"]),
    ],
)
def test_gate_settings_errors_name_file_and_key(project, content, key, words):
    path = project / "nsys-doctor.toml"
    with pytest.raises(UsageError) as info:
        gate_of(project, content)
    line = info.value.one_line()
    for w in (str(path), f"key {key}", *words):
        assert w in line, (w, line)


def test_gate_settings_name_the_pyproject_key(project):
    with pytest.raises(UsageError, match=r"key tool\.nsys-doctor\.gate\.threshold: must be a number"):
        gate_of(project, '[tool.nsys-doctor.gate]\nthreshold = "abc"\n', "pyproject.toml")


def test_diff_with_a_bad_gate_config_is_one_line(project, capsys):
    write(project / "nsys-doctor.toml", '[gate]\nthreshold = "abc"\n')
    one_line_error(capsys, ["diff", str(SAMPLE), str(SAMPLE), "--gate", "5"], "gate.threshold")


# ------------------------------------------------------------------------------------------------ empty traces


@pytest.fixture
def no_kernels(tmp_path) -> Path:
    """The bundled sample with every kernel deleted."""
    p = tmp_path / "no_kernels.sqlite"
    shutil.copyfile(SAMPLE, p)
    with sqlite3.connect(p) as con:
        con.execute("DELETE FROM CUPTI_ACTIVITY_KIND_KERNEL")
    return p


NOTHING_TO_MATCH = ("no steps found", "no GEMV/GEMM kernels")  # without kernels, steps may not be found at all


def test_roofline_on_a_trace_without_kernels(no_kernels, capsys):
    for extra in ([], ["--whole-trace"]):
        line = one_line_error(capsys, ["roofline", str(no_kernels), "--model", str(CONFIG), *extra])
        assert any(w in line for w in NOTHING_TO_MATCH), line


def test_report_with_model_on_a_trace_without_kernels_notes_it(no_kernels, capsys):
    assert main(["report", str(no_kernels), "--model", str(CONFIG), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["roofline"] is None
    skipped = [n for n in data["notes"] if n.startswith("roofline skipped: ")]
    assert len(skipped) == 1 and any(w in skipped[0] for w in NOTHING_TO_MATCH), data["notes"]


def test_nccl_and_info_on_a_trace_without_kernels(no_kernels, capsys):
    one_line_error(capsys, ["nccl", str(no_kernels)], "no NCCL")
    assert main(["info", str(no_kernels)]) == 0
    capsys.readouterr()


@needs_shared
@pytest.mark.skipif(not (TRACES / "multigpu" / "tp2_allranks.sqlite").is_file(), reason="no multi-rank trace")
def test_report_model_on_several_ranks_is_refused(capsys):
    # one trace holding two ranks is reported per rank, where --model would be silently ignored
    args = ["report", str(TRACES / "multigpu" / "tp2_allranks.sqlite"), "--model", str(CONFIG)]
    one_line_error(capsys, args, "--model applies to a report on one rank", "--no-split")


@pytest.mark.parametrize("command", ["report", "explain"])
def test_top_has_an_upper_bound(command, capsys):
    from nsys_doctor.cli.main import main as run

    target = str(SAMPLE) if command == "report" else str(sorted((DATA / "pasted").glob("*.txt"))[0])
    assert run([command, target, "--top", "99999999999999999999"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--top" in err
