"""The data layer's readers, writers and generators stay importable without torch."""
import subprocess
import sys


def test_data_modules_do_not_import_torch():
    code = ("import sys; import trackformers.data.mot, trackformers.data.datasets, trackformers.data.odgt, "
            "trackformers.data.bdd, trackformers.data.synthetic, trackformers.data.sources, "
            "trackformers.data.perturb; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
