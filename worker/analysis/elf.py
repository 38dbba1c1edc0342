"""ELF metadata (pyelftools): class, machine, type, entry point, sections, interpreter, needed libraries."""

from __future__ import annotations

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import InterpSegment

from worker.analysis.context import Analyzer, FileContext, Findings, hit

MAX_SECTIONS = 200
MAX_LIBRARIES = 200


def analyze(context: FileContext) -> Findings:
    with context.path.open("rb") as handle:
        elf = ELFFile(handle)
        sections = []
        libraries: list[str] = []
        has_symbols = False
        for number, section in enumerate(elf.iter_sections()):
            if number < MAX_SECTIONS:
                sections.append(
                    {"name": section.name, "type": section["sh_type"], "size": section["sh_size"]}
                )
            has_symbols |= section["sh_type"] == "SHT_SYMTAB"
            if isinstance(section, DynamicSection):
                for tag in section.iter_tags():
                    if tag.entry.d_tag == "DT_NEEDED" and len(libraries) < MAX_LIBRARIES:
                        # pyelftools sets `needed` on DT_NEEDED tags only, so it is not in its types.
                        libraries.append(str(getattr(tag, "needed", "")))
        interpreter = ""
        for segment in elf.iter_segments():
            if isinstance(segment, InterpSegment):
                interpreter = segment.get_interp_name()
        metadata = {
            "class": f"ELF{elf.elfclass}",
            "endianness": "little" if elf.little_endian else "big",
            "machine": elf["e_machine"],
            "type": elf["e_type"],
            "os_abi": elf["e_ident"]["EI_OSABI"],
            "entry_point": elf["e_entry"],
            "interpreter": interpreter,
            "sections": sections,
            "section_count": elf.num_sections(),
            "dynamic_libraries": libraries,
            "stripped": not has_symbols,
        }
    findings: Findings = {"metadata": {"application": {"elf": metadata}}}
    if elf.num_sections() == 0:
        findings["heuristics"] = [hit("elf:no-sections")]
    return findings


ANALYZER = Analyzer(name="elf", version="1", run=analyze, accepts=("ELF",))
