"""Build the hot-path extension (ebpfprof._ring); everything else is in pyproject.toml."""
import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py


class BuildPyWithSnippets(build_py):
    """Ship the top-level bpf/ snippets inside the package (ebpfprof/bpf/) in wheels."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "ebpfprof" / "bpf"
        target.mkdir(parents=True, exist_ok=True)
        for snippet in Path("bpf").iterdir():
            if snippet.suffix in (".h", ".c"):
                shutil.copy(snippet, target / snippet.name)


setup(
    ext_modules=[
        Extension(
            "ebpfprof._ring",
            sources=sorted(str(p) for p in Path("ebpfprof/_ring").glob("*.c")),
            include_dirs=["bpf"],    # ep_sample.h: the record header BPF writes
            depends=sorted(str(p) for p in Path("ebpfprof/_ring").glob("*.h")) + ["bpf/ep_sample.h"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
                                "-Wno-unused-parameter", "-Wno-cast-function-type"],
        )
    ],
    cmdclass={"build_py": BuildPyWithSnippets},
)
