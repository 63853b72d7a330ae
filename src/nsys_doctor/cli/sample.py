"""``nsys-doctor sample``: the path of the bundled sample trace, to try the tool without a GPU."""

from __future__ import annotations

from importlib import resources

import click

SAMPLE_NAME = "sample_decode.sqlite"


def sample_path() -> str:
    return str(resources.files("nsys_doctor") / "data" / SAMPLE_NAME)


@click.command()
def sample() -> None:
    """Print the path of the bundled sample trace (16 graphed decode steps of a Llama-style model on an H100).

    \b
    Try:  nsys-doctor stats "$(nsys-doctor sample)" -r cuda_gpu_kern_sum:base
    """
    click.echo(sample_path())


COMMANDS = [sample]
