"""apd.engine.hooks: the output-folder guards (refuse to start over checkpoints; keep a run's config)."""
import pytest

from apd.engine.hooks import check_output_dir, keep_run_config


def test_check_output_dir_refuses_a_folder_with_checkpoints(tmp_path):
    check_output_dir(str(tmp_path / "new"), resume=False, overwrite=False)  # missing folder: fine
    (tmp_path / "log.txt").write_text("x")
    check_output_dir(str(tmp_path), resume=False, overwrite=False)  # no checkpoint: fine
    (tmp_path / "model_0000999.pth").write_bytes(b"0")
    with pytest.raises(FileExistsError, match="--resume"):
        check_output_dir(str(tmp_path), resume=False, overwrite=False)
    check_output_dir(str(tmp_path), resume=True, overwrite=False)
    check_output_dir(str(tmp_path), resume=False, overwrite=True)


def test_keep_run_config_restores_the_runs_config_and_keeps_the_new_one_aside(tmp_path):
    (tmp_path / "config.yaml").write_text("train: run\n")
    with keep_run_config(str(tmp_path)):
        (tmp_path / "config.yaml").write_text("train: eval\n")  # what default_setup does
    assert (tmp_path / "config.yaml").read_text() == "train: run\n"
    assert (tmp_path / "config_eval.yaml").read_text() == "train: eval\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "config_eval.yaml"]  # no temp files


def test_keep_run_config_is_a_no_op_without_a_previous_config_or_change(tmp_path):
    with keep_run_config(str(tmp_path)):
        (tmp_path / "config.yaml").write_text("train: first\n")
    assert (tmp_path / "config.yaml").read_text() == "train: first\n"
    assert not (tmp_path / "config_eval.yaml").exists()
    with keep_run_config(str(tmp_path)):
        pass
    assert not (tmp_path / "config_eval.yaml").exists()


def test_keep_run_config_restores_even_when_the_block_fails(tmp_path):
    (tmp_path / "config.yaml").write_text("train: run\n")
    with pytest.raises(RuntimeError):
        with keep_run_config(str(tmp_path)):
            (tmp_path / "config.yaml").write_text("train: eval\n")
            raise RuntimeError("boom")
    assert (tmp_path / "config.yaml").read_text() == "train: run\n"
