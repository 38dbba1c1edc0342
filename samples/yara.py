"""Rule files shaped like community rule sets: external variables, modules, and a broken file."""

from __future__ import annotations

# Rules on the external variables, each tagging the file it fires on (no verdict meta, as in
# most community sets: they are indicators and tags only).
EXTERNALS_RULES = r"""
rule Name_Ends_In_Exe { condition: filename matches /\.exe$/ }
rule Extension_Is_Js { condition: extension == ".js" }
rule Path_Inside_Inner { condition: filepath contains "inner/" }
rule Header_Type_Exe { condition: filetype == "EXE" }
rule Header_Type_Zip { condition: filetype == "ZIP" }
rule Scanhub_Type_Pe { condition: scanhub_filetype == "PE/Exe" }
rule No_Owner { condition: owner == "" and filesize > 0 and filename == "readme.txt" }
"""

# One rule per module community sets import, each using the module in its condition.
MODULE_RULES = {
    "mod_pe.yar": 'import "pe"\nrule Uses_Pe { condition: pe.is_pe and pe.number_of_sections > 0 }\n',
    "mod_math.yar": 'import "math"\nrule Uses_Math { condition: math.entropy(0, filesize) > 7.9 }\n',
    "mod_hash.yar": (
        'import "hash"\n'
        'rule Uses_Hash { condition: hash.md5(0, filesize) == "00000000000000000000000000000000" }\n'
    ),
    "mod_elf.yar": (
        'import "elf"\nrule Uses_Elf { condition: elf.type == elf.ET_EXEC and elf.number_of_sections > 0 }\n'
    ),
    "mod_dotnet.yar": (
        'import "dotnet"\nrule Uses_Dotnet { condition: dotnet.is_dotnet and dotnet.number_of_streams > 3 }\n'
    ),
    "mod_time_string.yar": (
        'import "time"\nimport "string"\n'
        'rule Uses_Time_String { condition: time.now() > 0 and string.length("abc") == 3 and false }\n'
    ),
    "community_externals.yar": (
        'rule Cloaked_Exe { condition: (extension == ".jpg" or extension == ".pdf") and filetype == "EXE" }\n'
        'rule Not_In_Temp { strings: $a = "zz-never-there-zz"\n'
        '  condition: $a and not filepath contains "Temp" }\n'
    ),
}

SYNTAX_ERROR_RULE = 'rule Broken_Syntax { strings: $a = "x" condition: $a and ( }\n'


def minimal_pe() -> bytes:
    """A PE header just complete enough for the pe module (one section, i386)."""
    dos = bytearray(64)
    dos[0:2] = b"MZ"
    dos[0x3C:0x40] = (64).to_bytes(4, "little")
    file_header = (
        (0x14C).to_bytes(2, "little")  # i386
        + (1).to_bytes(2, "little")  # one section
        + bytes(12)
        + (224).to_bytes(2, "little")  # optional header size
        + (0x0102).to_bytes(2, "little")
    )
    optional = bytearray(224)
    optional[0:2] = (0x10B).to_bytes(2, "little")
    optional[16:20] = (0x1000).to_bytes(4, "little")  # entry point
    optional[28:32] = (0x400000).to_bytes(4, "little")  # image base
    optional[32:36] = (0x1000).to_bytes(4, "little")
    optional[36:40] = (0x200).to_bytes(4, "little")
    optional[56:60] = (0x2000).to_bytes(4, "little")  # size of image
    optional[60:64] = (0x200).to_bytes(4, "little")  # size of headers
    optional[68:70] = (3).to_bytes(2, "little")  # console subsystem
    optional[92:96] = (16).to_bytes(4, "little")
    section = (
        b".text\0\0\0"
        + (0x10).to_bytes(4, "little")
        + (0x1000).to_bytes(4, "little")
        + (0x200).to_bytes(4, "little")
        + (0x200).to_bytes(4, "little")
        + bytes(12)
        + (0x60000020).to_bytes(4, "little")
    )
    headers = bytes(dos) + b"PE\0\0" + file_header + bytes(optional) + section
    return headers.ljust(0x200, b"\0") + b"\xc3".ljust(0x200, b"\0")
