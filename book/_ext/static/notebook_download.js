// book/_ext/notebook_download.py: a click on a .ipynb entry of the download menu saves the file
// (under its own name) instead of opening its JSON in a new tab, also from the built files.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".dropdown-download-buttons a[href$='.ipynb']").forEach(function (a) {
    a.setAttribute("download", a.getAttribute("href").split("/").pop());
    a.removeAttribute("target");
  });
});
