// Scripts that fetch something from the network and run it straight away.
rule Script_Download_And_Execute_PowerShell
{
    meta:
        description = "PowerShell downloading a payload and invoking it"
        threat_name = "Script.Downloader.PowerShell"
        classification = "malicious"
        factor = 4
    strings:
        $download1 = "DownloadString(" nocase ascii wide
        $download2 = "DownloadFile(" nocase ascii wide
        $download3 = "Invoke-WebRequest" nocase ascii wide
        $download4 = "Net.WebClient" nocase ascii wide
        $execute1 = "IEX" ascii wide
        $execute2 = "Invoke-Expression" nocase ascii wide
        $execute3 = "Start-Process" nocase ascii wide
    condition:
        filesize < 5MB and any of ($download*) and any of ($execute*)
}

rule Script_Download_And_Execute_Shell
{
    meta:
        description = "Shell script piping a download into a shell, or fetching and running a binary"
        threat_name = "Script.Downloader.Shell"
        classification = "malicious"
        factor = 4
    strings:
        $pipe1 = /(curl|wget)[^\n|;]{1,200}\|\s*(ba|da|z)?sh\b/
        $fetch = /(curl|wget)[^\n;]{1,200}(-o|-O|--output)\s*\S+/
        $chmod = /chmod\s+(\+x|[0-7]{3,4})\s/
    condition:
        filesize < 5MB and ($pipe1 or ($fetch and $chmod))
}

rule Script_Download_And_Execute_Windows
{
    meta:
        description = "VBScript/JScript/batch fetching over HTTP and running the result"
        threat_name = "Script.Downloader.WindowsScript"
        classification = "malicious"
        factor = 4
    strings:
        $http1 = "MSXML2.XMLHTTP" nocase ascii wide
        $http2 = "WinHttp.WinHttpRequest" nocase ascii wide
        $http3 = "certutil -urlcache" nocase ascii wide
        $http4 = "bitsadmin /transfer" nocase ascii wide
        $run1 = "WScript.Shell" nocase ascii wide
        $run2 = "ShellExecute" nocase ascii wide
        $run3 = "start " nocase ascii wide
    condition:
        filesize < 5MB and any of ($http*) and any of ($run*)
}
