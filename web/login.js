// Says why the login page came back after a refused token.
'use strict';
if (new URLSearchParams(location.search).has('failed'))
  document.getElementById('failed').hidden = false;
