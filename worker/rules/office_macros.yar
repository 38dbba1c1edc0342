// Office documents whose VBA project names a macro that runs on open or close.
rule Office_AutoExec_Macro
{
    meta:
        description = "OLE document with a VBA project and an auto-executing macro name"
        threat_name = "Document.Downloader.AutoExecMacro"
        classification = "suspicious"
        factor = 3
    strings:
        $vba_project = "_VBA_PROJECT" wide
        $vba_dir = "VBA" wide
        $auto1 = "AutoOpen" nocase
        $auto2 = "Auto_Open" nocase
        $auto3 = "Document_Open" nocase
        $auto4 = "Workbook_Open" nocase
        $auto5 = "AutoExec" nocase
        $auto6 = "AutoClose" nocase
        $auto7 = "Document_Close" nocase
    condition:
        uint32be(0) == 0xD0CF11E0 and $vba_project and $vba_dir and any of ($auto*)
}
